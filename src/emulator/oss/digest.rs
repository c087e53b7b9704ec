//! What the emulator keeps of an object's bytes instead of the bytes: the size, digests (SHA-256,
//! MD5 for the ETag, OSS's CRC-64/ECMA), and the first and last few KiB, which is all an import
//! needs to tell the file's format (a qcow2 header, a VHD footer, a VMDK sparse header).
//!
//! Whole objects are never held, so a GiB upload costs the emulator a few KiB.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Bytes kept from each end: the qcow2 header (virtual size at offset 24) and the 512-byte VHD
/// footer fit many times over.
pub const EDGE: usize = 4096;

/// OSS's CRC-64 (ECMA-182 polynomial, reflected, all-ones start and final XOR: CRC-64/XZ), the
/// value of `x-oss-hash-crc64ecma`.
const CRC64_POLY: u64 = 0xC96C_5795_D787_0F42;

const fn crc64_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC64_TABLE: [u64; 256] = crc64_table();

/// Continues a CRC-64/ECMA over more bytes (start from 0).
pub fn crc64_update(crc: u64, bytes: &[u8]) -> u64 {
    let mut crc = !crc;
    for &byte in bytes {
        crc = CRC64_TABLE[((crc ^ u64::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn gf2_times(matrix: &[u64; 64], mut vector: u64) -> u64 {
    let mut sum = 0;
    let mut row = 0;
    while vector != 0 {
        if vector & 1 == 1 {
            sum ^= matrix[row];
        }
        vector >>= 1;
        row += 1;
    }
    sum
}

fn gf2_square(square: &mut [u64; 64], matrix: &[u64; 64]) {
    for (row, out) in square.iter_mut().enumerate() {
        *out = gf2_times(matrix, matrix[row]);
    }
}

/// The CRC of `A ‖ B` from the CRCs of `A` and `B` and the length of `B` (zlib's
/// `crc32_combine`, for 64 bits): how OSS gives a multipart object the CRC of its whole content.
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    if len_b == 0 {
        return crc_a;
    }
    let mut odd = [0u64; 64];
    odd[0] = CRC64_POLY;
    let mut row = 1u64;
    for entry in odd.iter_mut().skip(1) {
        *entry = row;
        row <<= 1;
    }
    let mut even = [0u64; 64];
    gf2_square(&mut even, &odd);
    gf2_square(&mut odd, &even);
    let mut crc = crc_a;
    let mut len = len_b;
    loop {
        gf2_square(&mut even, &odd);
        if len & 1 == 1 {
            crc = gf2_times(&even, crc);
        }
        len >>= 1;
        if len == 0 {
            break;
        }
        gf2_square(&mut odd, &even);
        if len & 1 == 1 {
            crc = gf2_times(&odd, crc);
        }
        len >>= 1;
        if len == 0 {
            break;
        }
    }
    crc ^ crc_b
}

/// A body being received: fed chunk by chunk, finished into a [`Content`].
#[derive(Debug, Clone, Default)]
pub struct ContentDigest {
    size: u64,
    sha256: Sha256,
    md5: Md5,
    crc64: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl ContentDigest {
    /// Takes the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha256.update(chunk);
        self.md5.update(chunk);
        self.crc64 = crc64_update(self.crc64, chunk);
        if self.head.len() < EDGE {
            let take = (EDGE - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        keep_tail(&mut self.tail, chunk);
    }

    /// Bytes so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests and edges of everything fed.
    pub fn finish(self) -> Content {
        let md5: [u8; 16] = self.md5.finalize().into();
        Content {
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            md5,
            crc64: self.crc64,
            head: self.head,
            tail: self.tail,
        }
    }
}

fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    if chunk.len() >= EDGE {
        tail.clear();
        tail.extend_from_slice(&chunk[chunk.len() - EDGE..]);
    } else {
        tail.extend_from_slice(chunk);
        if tail.len() > EDGE {
            tail.drain(..tail.len() - EDGE);
        }
    }
}

/// What is kept of a part or an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// MD5 (the ETag of a part or a simple object; `Content-MD5` in base64).
    pub md5: [u8; 16],
    /// CRC-64/ECMA.
    pub crc64: u64,
    /// The first [`EDGE`] bytes (fewer if the content is shorter).
    pub head: Vec<u8>,
    /// The last [`EDGE`] bytes.
    pub tail: Vec<u8>,
}

impl Content {
    /// The ETag OSS gives it: the MD5 in uppercase hex, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode_upper(self.md5))
    }

    /// The `Content-MD5` header value.
    pub fn content_md5(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.md5)
    }
}

/// The head, tail, size and CRC of parts joined in order (digests that cannot be combined, the
/// SHA-256 and MD5, stay per part).
pub fn join_edges(parts: &[&Content]) -> (u64, u64, Vec<u8>, Vec<u8>) {
    let mut size = 0u64;
    let mut crc = 0u64;
    let mut head = Vec::new();
    let mut tail = Vec::new();
    for part in parts {
        crc = crc64_combine(crc, part.crc64, part.size);
        size += part.size;
        if head.len() < EDGE {
            let take = (EDGE - head.len()).min(part.head.len());
            head.extend_from_slice(&part.head[..take]);
        }
        keep_tail(&mut tail, &part.tail);
    }
    (size, crc, head, tail)
}

/// The format an import would find, and the virtual disk size when the file says it.
pub fn detect_format(head: &[u8], tail: &[u8]) -> (&'static str, Option<u64>) {
    let be_u64 = |bytes: &[u8], at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
    };
    if head.starts_with(b"QFI\xfb") {
        return ("QCOW2", be_u64(head, 24));
    }
    if tail.len() >= 512 {
        let footer = &tail[tail.len() - 512..];
        if footer.starts_with(b"conectix") {
            return ("VHD", be_u64(footer, 48));
        }
    }
    if head.starts_with(b"KDMV") {
        let sectors = head
            .get(12..20)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes);
        return ("VMDK", sectors.map(|s| s.saturating_mul(512)));
    }
    ("RAW", None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_the_check_value_and_combines() {
        // The CRC-64/XZ check value of "123456789".
        assert_eq!(crc64_update(0, b"123456789"), 0x995D_C9BB_DF19_39FA);
        let (a, b) = (b"hello, ".as_slice(), b"object storage".as_slice());
        let whole = crc64_update(crc64_update(0, a), b);
        assert_eq!(
            crc64_combine(crc64_update(0, a), crc64_update(0, b), b.len() as u64),
            whole
        );
        assert_eq!(crc64_combine(whole, 0, 0), whole);
    }

    #[test]
    fn edges_survive_chunking_and_joining() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut one = ContentDigest::default();
        for chunk in data.chunks(777) {
            one.update(chunk);
        }
        let one = one.finish();
        assert_eq!(one.head, data[..EDGE]);
        assert_eq!(one.tail, data[data.len() - EDGE..]);
        let parts: Vec<Content> = data
            .chunks(6000)
            .map(|chunk| {
                let mut digest = ContentDigest::default();
                digest.update(chunk);
                digest.finish()
            })
            .collect();
        let (size, crc, head, tail) = join_edges(&parts.iter().collect::<Vec<_>>());
        assert_eq!(
            (size, crc, head, tail),
            (one.size, one.crc64, one.head, one.tail)
        );
    }

    #[test]
    fn formats_come_from_magic_bytes() {
        let mut qcow = b"QFI\xfb\0\0\0\x03".to_vec();
        qcow.resize(24, 0);
        qcow.extend_from_slice(&(20u64 << 30).to_be_bytes());
        assert_eq!(detect_format(&qcow, &qcow), ("QCOW2", Some(20 << 30)));
        let mut footer = b"conectix".to_vec();
        footer.resize(48, 0);
        footer.extend_from_slice(&(5u64 << 30).to_be_bytes());
        footer.resize(512, 0);
        let mut vhd_tail = vec![7u8; 100];
        vhd_tail.extend_from_slice(&footer);
        assert_eq!(detect_format(&[0; 16], &vhd_tail), ("VHD", Some(5 << 30)));
        assert_eq!(detect_format(&[0; 16], &[0; 600]), ("RAW", None));
    }
}
