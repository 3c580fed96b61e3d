//! The fixed 128-byte header at the start of every `.octet` file: magic, version, flags, where the
//! JSON document and the data section are, the file length, and the metadata checksum.
//!
//! All integers are little-endian. Byte layout (see `FORMAT.md`, section "Header"):
//!
//! | offset | size | field         |
//! |-------:|-----:|---------------|
//! |      0 |    8 | magic `OCTETMDL` |
//! |      8 |    2 | major version |
//! |     10 |    2 | minor version |
//! |     12 |    4 | flags         |
//! |     16 |    8 | json_offset   |
//! |     24 |    8 | json_len      |
//! |     32 |    8 | data_offset   |
//! |     40 |    8 | data_len      |
//! |     48 |    8 | file_len      |
//! |     56 |   32 | meta_sha256   |
//! |     88 |   40 | reserved (zero) |

use super::{FormatError, ALIGN, FORMAT_MAJOR, FORMAT_MINOR, MAGIC, MAX_JSON_LEN};
use sha2::{Digest, Sha256};

/// Size of the fixed header in bytes. Two cache lines; the JSON document starts right after it.
pub const HEADER_LEN: usize = 128;

/// Byte range of the `meta_sha256` field inside the header.
const SHA_RANGE: std::ops::Range<usize> = 56..88;

/// Flag bits 0..16 are optional features: a reader ignores the ones it does not know.
pub const OPTIONAL_FLAGS_MASK: u32 = 0x0000_ffff;
/// Flag bits 16..32 are required features: a reader rejects a file with one it does not know.
pub const REQUIRED_FLAGS_MASK: u32 = 0xffff_0000;
/// Required flag (since 1.2): the encoder's hidden channels are stored in the order of the
/// tensor [`super::CHANNEL_ORDER_TENSOR`], which a reader must apply to the pooled vector. A
/// reader that ignored it would return reordered vectors, so older readers must refuse it.
pub const FLAG_CHANNEL_ORDER: u32 = 1 << 16;
/// Required flags this reader understands (none in formats 1.0 and 1.1; 1.3 adds none).
const KNOWN_REQUIRED_FLAGS: u32 = FLAG_CHANNEL_ORDER;

/// The decoded header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub flags: u32,
    pub json_offset: u64,
    pub json_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub file_len: u64,
    pub meta_sha256: [u8; 32],
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&bytes[at..at + 2]);
    u16::from_le_bytes(b)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl Header {
    /// A header for a new file of the current format version. `meta_sha256` is left zero; fill it
    /// with [`Header::seal`].
    pub fn new(json_len: u64, data_offset: u64, data_len: u64, file_len: u64, flags: u32) -> Header {
        Header {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            flags,
            json_offset: HEADER_LEN as u64,
            json_len,
            data_offset,
            data_len,
            file_len,
            meta_sha256: [0; 32],
        }
    }

    /// Decodes and checks the header at the start of a file of `file.len()` bytes (the whole file,
    /// or at least the header when `actual_len` is given separately by [`Header::check_layout`]).
    ///
    /// Order of checks, so that each kind of damage gets its own message: magic, version, required
    /// flags. Layout is checked by [`Header::check_layout`].
    pub fn decode(file: &[u8]) -> Result<Header, FormatError> {
        if file.len() < MAGIC.len() {
            return if MAGIC.starts_with(file) {
                Err(FormatError::Truncated {
                    expected: HEADER_LEN as u64,
                    got: file.len() as u64,
                })
            } else {
                Err(FormatError::NotOctet { found: file.to_vec() })
            };
        }
        if file[..MAGIC.len()] != MAGIC[..] {
            return Err(FormatError::NotOctet {
                found: file[..MAGIC.len()].to_vec(),
            });
        }
        if file.len() < HEADER_LEN {
            // The version fields may be present already: report a newer file as such.
            if file.len() >= 12 {
                Self::check_version(u16_at(file, 8), u16_at(file, 10))?;
            }
            return Err(FormatError::Truncated {
                expected: HEADER_LEN as u64,
                got: file.len() as u64,
            });
        }
        let major = u16_at(file, 8);
        let minor = u16_at(file, 10);
        Self::check_version(major, minor)?;
        let flags = u32_at(file, 12);
        let unknown_required = flags & REQUIRED_FLAGS_MASK & !KNOWN_REQUIRED_FLAGS;
        if unknown_required != 0 {
            return Err(FormatError::UnknownRequiredFlags {
                flags: unknown_required,
            });
        }
        let mut meta_sha256 = [0u8; 32];
        meta_sha256.copy_from_slice(&file[SHA_RANGE]);
        Ok(Header {
            major,
            minor,
            flags,
            json_offset: u64_at(file, 16),
            json_len: u64_at(file, 24),
            data_offset: u64_at(file, 32),
            data_len: u64_at(file, 40),
            file_len: u64_at(file, 48),
            meta_sha256,
        })
    }

    fn check_version(major: u16, minor: u16) -> Result<(), FormatError> {
        if major > FORMAT_MAJOR {
            return Err(FormatError::NewerVersion {
                file_major: major,
                file_minor: minor,
                reader_major: FORMAT_MAJOR,
            });
        }
        if major < FORMAT_MAJOR {
            return Err(FormatError::OlderVersion {
                file_major: major,
                file_minor: minor,
                reader_major: FORMAT_MAJOR,
            });
        }
        Ok(())
    }

    /// Checks the section layout against the real file length `actual_len`:
    /// `file_len == actual_len`, `json_offset >= 128`, JSON within limits and before the data,
    /// `data_offset` a multiple of 64 and `data_offset + data_len == file_len`, no overflow.
    pub fn check_layout(&self, actual_len: u64) -> Result<(), FormatError> {
        if actual_len < self.file_len {
            return Err(FormatError::Truncated {
                expected: self.file_len,
                got: actual_len,
            });
        }
        if actual_len > self.file_len {
            return Err(FormatError::TrailingBytes {
                expected: self.file_len,
                got: actual_len,
            });
        }
        if self.json_offset < HEADER_LEN as u64 {
            return Err(FormatError::bad_header(format!(
                "json_offset {} is inside the {HEADER_LEN}-byte header",
                self.json_offset
            )));
        }
        if self.json_len > MAX_JSON_LEN {
            return Err(FormatError::bad_header(format!(
                "json_len {} is over the limit of {MAX_JSON_LEN} bytes",
                self.json_len
            )));
        }
        let json_end = self
            .json_offset
            .checked_add(self.json_len)
            .ok_or_else(|| FormatError::bad_header("json_offset + json_len overflows"))?;
        if json_end > self.data_offset {
            return Err(FormatError::bad_header(format!(
                "the JSON document (bytes {}..{json_end}) runs into the data section at {}",
                self.json_offset, self.data_offset
            )));
        }
        if !self.data_offset.is_multiple_of(ALIGN) {
            return Err(FormatError::bad_header(format!(
                "data_offset {} is not a multiple of {ALIGN}",
                self.data_offset
            )));
        }
        let data_end = self
            .data_offset
            .checked_add(self.data_len)
            .ok_or_else(|| FormatError::bad_header("data_offset + data_len overflows"))?;
        if data_end != self.file_len {
            return Err(FormatError::bad_header(format!(
                "the data section ends at {data_end} but file_len is {}",
                self.file_len
            )));
        }
        Ok(())
    }

    /// Encodes the header into its 128 bytes (reserved bytes zero).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.major.to_le_bytes());
        out[10..12].copy_from_slice(&self.minor.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.json_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.json_len.to_le_bytes());
        out[32..40].copy_from_slice(&self.data_offset.to_le_bytes());
        out[40..48].copy_from_slice(&self.data_len.to_le_bytes());
        out[48..56].copy_from_slice(&self.file_len.to_le_bytes());
        out[SHA_RANGE].copy_from_slice(&self.meta_sha256);
        out
    }

    /// The metadata checksum: sha256 of the 128 header bytes with `meta_sha256` zeroed, followed by
    /// the JSON document. It covers every header field (including flags, minor version and the
    /// reserved bytes) and the whole JSON.
    pub fn compute_meta_sha256(header_bytes: &[u8; HEADER_LEN], json: &[u8]) -> [u8; 32] {
        let mut zeroed = *header_bytes;
        zeroed[SHA_RANGE].fill(0);
        let mut hasher = Sha256::new();
        hasher.update(zeroed);
        hasher.update(json);
        hasher.finalize().into()
    }

    /// Fills `meta_sha256` for this header and `json`, and returns the encoded bytes.
    pub fn seal(&mut self, json: &[u8]) -> [u8; HEADER_LEN] {
        self.meta_sha256 = [0; 32];
        let bytes = self.encode();
        self.meta_sha256 = Self::compute_meta_sha256(&bytes, json);
        self.encode()
    }

    /// Checks `meta_sha256` against the header bytes as found in the file and the JSON document.
    pub fn verify_meta_sha256(header_bytes: &[u8], json: &[u8]) -> Result<(), FormatError> {
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&header_bytes[..HEADER_LEN]);
        let stored = &raw[SHA_RANGE].to_vec();
        if Self::compute_meta_sha256(&raw, json)[..] != stored[..] {
            return Err(FormatError::ChecksumMismatch {
                what: "header and metadata",
            });
        }
        Ok(())
    }
}
