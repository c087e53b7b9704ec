//! The disk format a file's magic bytes show, from its first [`HEAD`] and last [`TAIL`] bytes
//! (what the transfer keeps while streaming), and whether it fits the declared one.
//!
//! The emulator's `detect_format` (in `emulator::oss::digest`) reads the same magic for qcow2, VHD
//! and VMDK and also the virtual size; this one adds VHDX, ISO and VMDK descriptors and needs no
//! size, so the two stay apart rather than the operator depending on the emulator.

/// Bytes kept from the start: the ISO 9660 volume descriptor sits at 0x8001.
pub const HEAD: usize = 0x8001 + 5;
/// Bytes kept from the end: the 512-byte VHD footer.
pub const TAIL: usize = 512;

/// The format the bytes show, in ECS's spelling (`QCOW2`, `VMDK`, `VHDX`, `VHD`, `ISO`, `RAW`).
pub fn detect(head: &[u8], tail: &[u8]) -> &'static str {
    if head.starts_with(b"QFI\xfb") {
        return "QCOW2";
    }
    if head.starts_with(b"KDMV") || is_vmdk_descriptor(head) {
        return "VMDK";
    }
    if head.starts_with(b"vhdxfile") {
        return "VHDX";
    }
    if tail.len() >= 512 && tail[tail.len() - 512..].starts_with(b"conectix") {
        return "VHD";
    }
    if head.get(0x8001..0x8006) == Some(b"CD001".as_slice()) {
        return "ISO";
    }
    "RAW"
}

/// A VMDK text descriptor starts with `# Disk DescriptorFile`.
fn is_vmdk_descriptor(head: &[u8]) -> bool {
    head.starts_with(b"# Disk DescriptorFile")
}

/// Whether bytes showing `detected` may be imported as `declared` (case-insensitive; ECS also
/// takes `qcow2` for QCOW2 and calls raw images `RAW`).
pub fn matches(declared: &str, detected: &str) -> bool {
    declared.eq_ignore_ascii_case(detected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(detect(b"QFI\xfb\0\0\0\x03", &[]), "QCOW2");
        assert_eq!(detect(b"KDMV....", &[]), "VMDK");
        assert_eq!(detect(b"# Disk DescriptorFile\nversion=1", &[]), "VMDK");
        assert_eq!(detect(b"vhdxfile", &[]), "VHDX");
        let mut tail = vec![1u8; 100];
        tail.extend_from_slice(b"conectix");
        tail.resize(612, 0);
        assert_eq!(detect(&[0; 16], &tail), "VHD");
        let mut iso = vec![0u8; HEAD];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect(&iso, &[]), "ISO");
        assert_eq!(detect(&[0; 64], &[0; 512]), "RAW");
        assert!(matches("qcow2", "QCOW2"));
        assert!(!matches("qcow2", "RAW"));
    }
}
