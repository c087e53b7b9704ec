//! The bytes a source serves, computed from (seed, size) offset by offset, so a multi-GiB source
//! costs no memory and a test can compute any range, or the whole body's SHA-256, the same way the
//! server produced it.

use sha2::{Digest, Sha256};

/// Bytes are generated in 8-byte words; each word depends only on the seed and its index, so any
/// offset can be computed without the bytes before it.
const WORD: u64 = 8;
/// How much of the body the digest helpers hold at a time.
const DIGEST_CHUNK: usize = 1 << 20;

/// A deterministic body: pseudo-random bytes from `seed`, `size` bytes long, whose first bytes may
/// be a given prefix and whose last bytes a given suffix (a qcow2 header, a VHD footer), so format
/// detection can be tested on bytes that are otherwise noise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceBody {
    seed: u64,
    size: u64,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl SourceBody {
    /// Noise from `seed`, `size` bytes long.
    pub fn new(seed: u64, size: u64) -> Self {
        Self {
            seed,
            size,
            prefix: Vec::new(),
            suffix: Vec::new(),
        }
    }

    /// The same body with its first bytes replaced by `prefix` (cut to the body's size).
    pub fn with_prefix(mut self, prefix: &[u8]) -> Self {
        let keep = usize::try_from(self.size)
            .unwrap_or(usize::MAX)
            .min(prefix.len());
        self.prefix = prefix[..keep].to_vec();
        self
    }

    /// The same body with its last bytes replaced by `suffix` (cut to the body's size; on a body
    /// shorter than prefix and suffix together, the suffix wins where they overlap).
    pub fn with_suffix(mut self, suffix: &[u8]) -> Self {
        let keep = usize::try_from(self.size)
            .unwrap_or(usize::MAX)
            .min(suffix.len());
        self.suffix = suffix[suffix.len() - keep..].to_vec();
        self
    }

    /// The body's length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A strong validator that changes with every parameter of the body, quoted as HTTP wants it.
    pub fn etag(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.seed.to_le_bytes());
        hasher.update(self.size.to_le_bytes());
        hasher.update((self.prefix.len() as u64).to_le_bytes());
        hasher.update(&self.prefix);
        hasher.update(&self.suffix);
        format!("\"{}\"", hex::encode(&hasher.finalize()[..8]))
    }

    /// Writes the body's bytes from `offset` into `buf`; bytes past the end are left untouched
    /// (callers never ask for them).
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut written = 0usize;
        while written < buf.len() {
            let at = offset + written as u64;
            let word = word(self.seed, at / WORD).to_le_bytes();
            let within = (at % WORD) as usize;
            let take = (word.len() - within).min(buf.len() - written);
            buf[written..written + take].copy_from_slice(&word[within..within + take]);
            written += take;
        }
        overlay(&self.prefix, 0, offset, buf);
        let suffix_start = self.size - self.suffix.len() as u64;
        overlay(&self.suffix, suffix_start, offset, buf);
    }

    /// The bytes in `start..end` (end exclusive, clamped to the size).
    pub fn range(&self, start: u64, end: u64) -> Vec<u8> {
        let end = end.min(self.size);
        let start = start.min(end);
        let mut buf = vec![0; usize::try_from(end - start).unwrap_or(usize::MAX)];
        self.fill(start, &mut buf);
        buf
    }

    /// The whole body as one vector; for small bodies only.
    pub fn to_vec(&self) -> Vec<u8> {
        self.range(0, self.size)
    }

    /// Lowercase hex SHA-256 of the whole body, computed a chunk at a time.
    pub fn sha256(&self) -> String {
        self.sha256_of_range(0, self.size)
    }

    /// Lowercase hex SHA-256 of the bytes in `start..end` (end exclusive, clamped to the size).
    pub fn sha256_of_range(&self, start: u64, end: u64) -> String {
        let end = end.min(self.size);
        let mut hasher = Sha256::new();
        let mut buf = vec![0; DIGEST_CHUNK];
        let mut at = start.min(end);
        while at < end {
            let take = (end - at).min(DIGEST_CHUNK as u64) as usize;
            self.fill(at, &mut buf[..take]);
            hasher.update(&buf[..take]);
            at += take as u64;
        }
        hex::encode(hasher.finalize())
    }
}

/// Lowercase hex SHA-256 of bytes a test received, to compare with [`SourceBody::sha256`].
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SplitMix64 at position `index` of the stream seeded by `seed`: cheap, and every output bit
/// depends on every input bit, so neighbouring words and seeds look unrelated.
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Copies the part of `bytes` (which sits at body offset `at`) that falls inside the window of the
/// body that `buf` holds from `offset`.
fn overlay(bytes: &[u8], at: u64, offset: u64, buf: &mut [u8]) {
    let window_end = offset + buf.len() as u64;
    let bytes_end = at + bytes.len() as u64;
    let start = at.max(offset);
    let end = bytes_end.min(window_end);
    if start >= end {
        return;
    }
    let from = (start - at) as usize;
    let to = (start - offset) as usize;
    let len = (end - start) as usize;
    buf[to..to + len].copy_from_slice(&bytes[from..from + len]);
}
