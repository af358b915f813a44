//! A small, read-only reader for the kernel's BTF (BPF Type Format), enough to resolve the
//! struct member offsets, type sizes and function/tracepoint arities that the kernel programs
//! need at load time (aya's Rust eBPF has no CO-RE, so user space patches them in).
//!
//! Format: the kernel's `Documentation/bpf/btf.rst`. A blob is a header
//! `{magic 0xeB9F, version, flags, hdr_len, type_off, type_len, str_off, str_len}` (section
//! offsets are relative to the end of the header), then the type section (a sequence of
//! `btf_type` records, each followed by kind-specific data; type ids are 1-based and id 0 is
//! `void`), then the string section (NUL-terminated names addressed by byte offset).
//!
//! Only native little-endian, non-split BTF (e.g. `/sys/kernel/btf/vmlinux`) is supported.
//! Nothing here panics on malformed input: every read is bounds-checked, and a truncated or
//! corrupt blob gives [`BtfError::Malformed`] saying what was wrong.
//!
//! Hand-written because aya-obj's BTF lookup API is crate-private in aya 0.14 and the one
//! maintained standalone crate is LGPL; this needs only a small subset.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_PATH: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xEB9F;
/// The magic as it reads on a little-endian host when the blob is big-endian.
const BTF_MAGIC_SWAPPED: u16 = 0x9FEB;
const BTF_VERSION: u8 = 1;
/// Size of the fixed part of `struct btf_header`; `hdr_len` may be larger (newer fields).
const HEADER_LEN: usize = 24;
/// Size of `struct btf_type` (name_off, info, size/type).
const TYPE_LEN: usize = 12;
/// Longest typedef/const/volatile/... chain followed before calling the data corrupt.
const MAX_CHAIN: usize = 64;
/// Deepest nesting of anonymous members / arrays followed before calling the data corrupt.
const MAX_NEST: usize = 32;
/// Size of a pointer on the (64-bit) targets the sensor supports.
const PTR_SIZE: u32 = 8;

/// Errors from reading or querying BTF.
#[derive(thiserror::Error, Debug)]
pub enum BtfError {
    #[error("reading BTF from {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error(
        "BTF is big-endian (magic reads 0x{BTF_MAGIC_SWAPPED:04x}); only little-endian BTF is supported"
    )]
    BigEndian,
    #[error("not found in kernel BTF: {what}")]
    NotFound { what: String },
    #[error("{ty}.{member} is a bitfield (not byte aligned); its offset cannot be read as bytes")]
    Bitfield { ty: String, member: String },
    /// A step of a dotted member path is not an embedded struct/union (e.g. it is a pointer).
    #[error("{what} is a {kind}, not an embedded struct/union")]
    NotAStruct { what: String, kind: &'static str },
    /// The member's type has no size (void, function, forward declaration).
    #[error("{what} has no size (type is {kind})")]
    NoSize { what: String, kind: &'static str },
    /// Several kernel functions share a name and disagree on the queried property.
    #[error("ambiguous in kernel BTF: {what}")]
    Ambiguous { what: String },
}

fn malformed(msg: impl Into<String>) -> BtfError {
    BtfError::Malformed(msg.into())
}

/// BTF type kinds (`BTF_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Ptr => "pointer",
            Kind::Array => "array",
            Kind::Struct => "struct",
            Kind::Union => "union",
            Kind::Enum => "enum",
            Kind::Fwd => "forward declaration",
            Kind::Typedef => "typedef",
            Kind::Volatile => "volatile",
            Kind::Const => "const",
            Kind::Restrict => "restrict",
            Kind::Func => "function",
            Kind::FuncProto => "function prototype",
            Kind::Var => "variable",
            Kind::Datasec => "data section",
            Kind::Float => "float",
            Kind::DeclTag => "decl tag",
            Kind::TypeTag => "type tag",
            Kind::Enum64 => "enum64",
        }
    }

    /// Bytes of kind-specific data after the 12-byte `btf_type`.
    fn trailing_len(self, vlen: usize) -> usize {
        match self {
            // u32 encoding / linkage / component_idx
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            // btf_array {type, index_type, nelems}
            Kind::Array => 12,
            // btf_member {name_off, type, offset}; btf_var_secinfo {type, offset, size};
            // btf_enum64 {name_off, val_lo32, val_hi32}
            Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => 12 * vlen,
            // btf_enum {name_off, val}; btf_param {name_off, type}
            Kind::Enum | Kind::FuncProto => 8 * vlen,
            Kind::Ptr
            | Kind::Fwd
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::Func
            | Kind::Float
            | Kind::TypeTag => 0,
        }
    }

    /// Kinds that only qualify or rename another type (followed when resolving).
    fn is_modifier(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }

    fn is_composite(self) -> bool {
        matches!(self, Kind::Struct | Kind::Union)
    }
}

/// One decoded `btf_type` header; the kind-specific data stays in the blob at `data`.
#[derive(Clone, Copy, Debug)]
struct TypeEntry {
    kind: Kind,
    kind_flag: bool,
    vlen: u16,
    /// `size` for INT/STRUCT/UNION/ENUM/ENUM64/FLOAT/DATASEC, else the referenced type id.
    size_or_type: u32,
    /// Absolute byte offset of the kind-specific data in the blob.
    data: usize,
}

/// A decoded `btf_member`.
#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    /// Non-zero only for kind_flag structs/unions whose member is a bitfield.
    bitfield_size: u32,
}

/// A member found by name, with its offset from the start of the outermost queried type.
#[derive(Clone, Copy, Debug)]
struct Found {
    member: Member,
    bit_offset: u64,
    /// kind_flag of the struct/union that directly holds the member.
    parent_kind_flag: bool,
}

/// Parsed BTF: owns the raw bytes, indexes types by id and named
/// STRUCT/UNION/FUNC/TYPEDEF types by name.
pub struct Btf {
    data: Vec<u8>,
    /// Absolute range of the string section in `data`.
    str_start: usize,
    str_end: usize,
    /// `types[id - 1]` is type `id` (id 0 is void and has no entry).
    types: Vec<TypeEntry>,
    /// Name -> ids of the STRUCT, UNION, FUNC and TYPEDEF types of that name, in id order.
    by_name: HashMap<Box<str>, Vec<u32>>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("bytes", &self.data.len())
            .field("types", &self.types.len())
            .field("indexed_names", &self.by_name.len())
            .finish()
    }
}

fn read_u32(buf: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let bytes: [u8; 4] = buf.get(off..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

impl Btf {
    /// Reads and parses a BTF file (e.g. [`VMLINUX_PATH`]).
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(bytes)
    }

    /// Reads and parses the running kernel's BTF, [`VMLINUX_PATH`].
    pub fn from_vmlinux() -> Result<Btf, BtfError> {
        Btf::from_file(Path::new(VMLINUX_PATH))
    }

    /// Parses a raw BTF blob, validating the header, every type record's extent, and every
    /// name offset, and building the name index.
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        if data.len() < HEADER_LEN {
            return Err(malformed(format!(
                "blob is {} bytes, shorter than the {HEADER_LEN}-byte BTF header",
                data.len()
            )));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(malformed(format!(
                "blob of {} bytes is too large",
                data.len()
            )));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic == BTF_MAGIC_SWAPPED {
            return Err(BtfError::BigEndian);
        }
        if magic != BTF_MAGIC {
            return Err(malformed(format!(
                "bad magic 0x{magic:04x} (expected 0x{BTF_MAGIC:04x}); not a BTF blob"
            )));
        }
        let version = data[2];
        if version != BTF_VERSION {
            return Err(malformed(format!(
                "unsupported BTF version {version} (expected {BTF_VERSION})"
            )));
        }
        let field = |off: usize| read_u32(&data, off).unwrap_or(0); // in bounds: len >= 24
        let hdr_len = field(4) as usize;
        let (type_off, type_len) = (field(8) as usize, field(12) as usize);
        let (str_off, str_len) = (field(16) as usize, field(20) as usize);
        if hdr_len < HEADER_LEN || hdr_len > data.len() {
            return Err(malformed(format!(
                "header length {hdr_len} is invalid (minimum {HEADER_LEN}, blob is {} bytes)",
                data.len()
            )));
        }
        let section = |name: &str, off: usize, len: usize| {
            let start = hdr_len.checked_add(off);
            let end = start.and_then(|s| s.checked_add(len));
            match (start, end) {
                (Some(start), Some(end)) if end <= data.len() => Ok((start, end)),
                _ => Err(malformed(format!(
                    "{name} section (offset {off}, length {len} after the {hdr_len}-byte header) \
                     runs past the end of the {}-byte blob; truncated?",
                    data.len()
                ))),
            }
        };
        let (type_start, type_end) = section("type", type_off, type_len)?;
        let (str_start, str_end) = section("string", str_off, str_len)?;
        if type_start < str_end && str_start < type_end {
            return Err(malformed("type and string sections overlap"));
        }
        let strs = &data[str_start..str_end];
        match strs {
            [] => return Err(malformed("string section is empty")),
            [first, ..] if *first != 0 => {
                return Err(malformed(
                    "string section does not start with the empty string",
                ));
            }
            [.., last] if *last != 0 => {
                return Err(malformed(
                    "string section does not end with a NUL; truncated?",
                ));
            }
            _ => {}
        }

        let mut btf = Btf {
            data: Vec::new(),
            str_start,
            str_end,
            types: Vec::with_capacity(type_len / 24),
            by_name: HashMap::new(),
        };
        let check_name = |id: usize, what: &str, off: u32| {
            if (off as usize) < str_len {
                Ok(())
            } else {
                Err(malformed(format!(
                    "type id {id}: {what} name offset {off} is outside the {str_len}-byte \
                     string section"
                )))
            }
        };

        let mut pos = type_start;
        while pos < type_end {
            let id = btf.types.len() + 1;
            if type_end - pos < TYPE_LEN {
                return Err(malformed(format!(
                    "type id {id} at byte {pos}: only {} bytes left in the type section, a type \
                     record needs {TYPE_LEN}; truncated?",
                    type_end - pos
                )));
            }
            let (name_off, info, size_or_type) = match (
                read_u32(&data, pos),
                read_u32(&data, pos + 4),
                read_u32(&data, pos + 8),
            ) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => {
                    return Err(malformed(format!(
                        "type id {id} at byte {pos}: out of bounds"
                    )));
                }
            };
            let raw_kind = (info >> 24) & 0x1f;
            let kind = Kind::from_raw(raw_kind).ok_or_else(|| {
                malformed(format!(
                    "type id {id} at byte {pos}: unknown BTF kind {raw_kind}"
                ))
            })?;
            let vlen = (info & 0xffff) as u16;
            let kind_flag = info >> 31 == 1;
            let data_start = pos + TYPE_LEN;
            let trailing = kind.trailing_len(usize::from(vlen));
            if type_end - data_start < trailing {
                return Err(malformed(format!(
                    "type id {id} ({} with {vlen} entries) at byte {pos}: needs {trailing} bytes \
                     of data but only {} remain in the type section; truncated?",
                    kind.name(),
                    type_end - data_start
                )));
            }
            check_name(id, kind.name(), name_off)?;
            // Names inside the kind-specific data: members, enumerators, parameters.
            let entry_len = match kind {
                Kind::Struct | Kind::Union | Kind::Enum64 => 12,
                Kind::Enum | Kind::FuncProto => 8,
                _ => 0,
            };
            if entry_len != 0 {
                for i in 0..usize::from(vlen) {
                    let off = read_u32(&data, data_start + i * entry_len).ok_or_else(|| {
                        malformed(format!("type id {id}: entry {i} out of bounds"))
                    })?;
                    check_name(id, "member/parameter", off)?;
                }
            }
            let entry = TypeEntry {
                kind,
                kind_flag,
                vlen,
                size_or_type,
                data: data_start,
            };
            if name_off != 0
                && matches!(
                    kind,
                    Kind::Struct | Kind::Union | Kind::Func | Kind::Typedef
                )
            {
                let name = str_at(&data, str_start, str_end, name_off)?;
                let id32 =
                    u32::try_from(id).map_err(|_| malformed(format!("too many types ({id})")))?;
                match btf.by_name.get_mut(name) {
                    Some(ids) => ids.push(id32),
                    None => {
                        btf.by_name.insert(name.into(), vec![id32]);
                    }
                }
            }
            btf.types.push(entry);
            pos = data_start + trailing;
        }
        btf.data = data;
        Ok(btf)
    }

    /// Byte offset of `member` inside struct/union `ty` (or a typedef of one), looking through
    /// anonymous struct/union members at any depth. Errors if `ty` is missing
    /// ([`BtfError::NotFound`] naming `struct ty`), the member is missing (naming `ty.member`),
    /// or the member is a bitfield ([`BtfError::Bitfield`]).
    pub fn member_offset(&self, ty: &str, member: &str) -> Result<u32, BtfError> {
        let (found, _) = self.find_in_named(ty, member)?;
        self.byte_offset(&found, ty, member)
    }

    /// Like [`Btf::member_offset`] for a dotted path through embedded (not pointed-to) members,
    /// e.g. `("sock", "__sk_common.skc_family")`. Every step but the last must be a
    /// struct/union (through typedefs/qualifiers); a pointer step gives
    /// [`BtfError::NotAStruct`]. Each step also looks through anonymous members.
    pub fn member_path_offset(&self, ty: &str, path: &str) -> Result<u32, BtfError> {
        let steps: Vec<&str> = path.split('.').collect();
        if steps.iter().any(|s| s.is_empty()) {
            return Err(BtfError::NotFound {
                what: format!("{ty}.{path} (empty component in member path)"),
            });
        }
        let candidates = self.composite_candidates(ty)?;
        if candidates.is_empty() {
            return Err(BtfError::NotFound {
                what: format!("struct {ty}"),
            });
        }
        let mut first_err = None;
        for &id in &candidates {
            match self.path_offset_in(id, ty, &steps) {
                Ok(off) => return Ok(off),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| BtfError::NotFound {
            what: format!("{ty}.{path}"),
        }))
    }

    /// Size in bytes of the type of member `member` of struct/union `ty` (typedefs and
    /// qualifiers resolved; pointers are 8; arrays are element size * count). Same lookup
    /// rules and errors as [`Btf::member_offset`]; a bitfield member is an error too.
    pub fn member_size(&self, ty: &str, member: &str) -> Result<u32, BtfError> {
        let (found, _) = self.find_in_named(ty, member)?;
        self.byte_offset(&found, ty, member)?;
        self.type_size(found.member.type_id, &format!("{ty}.{member}"), 0)
    }

    /// Whether a struct or union named `ty` (or a typedef of one) exists.
    pub fn has_struct(&self, ty: &str) -> bool {
        self.composite_candidates(ty).is_ok_and(|c| !c.is_empty())
    }

    /// Number of parameters of kernel function `func` (its FUNC's FUNC_PROTO; a trailing
    /// variadic `...` is not counted). For an fexit program the return value is the argument
    /// at this index. If several functions share the name and disagree, that is
    /// [`BtfError::Ambiguous`].
    pub fn func_param_count(&self, func: &str) -> Result<u32, BtfError> {
        let mut counts: Vec<u32> = Vec::new();
        for id in self.ids_of(func, Kind::Func) {
            let proto_id = self.get(id)?.size_or_type;
            let proto = self.get(proto_id)?;
            if proto.kind != Kind::FuncProto {
                return Err(malformed(format!(
                    "function {func} (id {id}) points to type id {proto_id}, a {}, not a \
                     function prototype",
                    proto.kind.name()
                )));
            }
            let count = self.proto_param_count(proto)?;
            if !counts.contains(&count) {
                counts.push(count);
            }
        }
        match counts.as_slice() {
            [] => Err(BtfError::NotFound {
                what: format!("function {func}"),
            }),
            [count] => Ok(*count),
            _ => Err(BtfError::Ambiguous {
                what: format!("several functions named {func} with parameter counts {counts:?}"),
            }),
        }
    }

    /// Whether a kernel function (BTF FUNC) named `func` exists.
    pub fn has_func(&self, func: &str) -> bool {
        self.ids_of(func, Kind::Func).next().is_some()
    }

    /// Number of parameters of raw tracepoint `tp`, from typedef `btf_trace_<tp>` (a pointer to
    /// a function prototype whose first parameter, the `void *` context, is not counted).
    /// E.g. `sched_process_exec` -> 3 (task, pid, bprm).
    pub fn raw_tracepoint_param_count(&self, tp: &str) -> Result<u32, BtfError> {
        let name = format!("btf_trace_{tp}");
        let Some(id) = self.ids_of(&name, Kind::Typedef).next() else {
            return Err(BtfError::NotFound {
                what: format!("raw tracepoint {tp} (typedef {name})"),
            });
        };
        let ptr_id = self.skip_modifiers(id)?;
        let ptr = self.get(ptr_id)?;
        if ptr.kind != Kind::Ptr {
            return Err(malformed(format!(
                "typedef {name} resolves to a {}, expected a pointer to a function prototype",
                ptr.kind.name()
            )));
        }
        let proto_id = self.skip_modifiers(ptr.size_or_type)?;
        let proto = self.get(proto_id)?;
        if proto.kind != Kind::FuncProto {
            return Err(malformed(format!(
                "typedef {name} points to a {}, expected a function prototype",
                proto.kind.name()
            )));
        }
        match self.proto_param_count(proto)? {
            0 => Err(malformed(format!(
                "typedef {name}: function prototype lacks the context parameter"
            ))),
            n => Ok(n - 1),
        }
    }

    // ---- internals -------------------------------------------------------------------------

    /// Type `id` (not void).
    fn get(&self, id: u32) -> Result<&TypeEntry, BtfError> {
        if id == 0 {
            return Err(malformed("unexpected reference to void (type id 0)"));
        }
        self.types.get(id as usize - 1).ok_or_else(|| {
            malformed(format!(
                "reference to type id {id}, but there are only {} types",
                self.types.len()
            ))
        })
    }

    fn name_of(&self, name_off: u32) -> Result<&str, BtfError> {
        str_at(&self.data, self.str_start, self.str_end, name_off)
    }

    /// Ids of the indexed types named `name` with the given kind.
    fn ids_of<'a>(&'a self, name: &str, kind: Kind) -> impl Iterator<Item = u32> + 'a {
        self.by_name
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(move |&id| self.get(id).is_ok_and(|t| t.kind == kind))
    }

    /// Follows typedef/const/volatile/restrict/type-tag from `id`; returns the first other
    /// type id (0 for void).
    fn skip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_CHAIN {
            if id == 0 {
                return Ok(0);
            }
            let t = self.get(id)?;
            if !t.kind.is_modifier() {
                return Ok(id);
            }
            id = t.size_or_type;
        }
        Err(malformed(format!(
            "type chain through id {id} is longer than {MAX_CHAIN} (cycle?)"
        )))
    }

    /// Struct/union ids for name `ty`: the STRUCT/UNIONs of that name, or failing those, the
    /// TYPEDEFs of that name that resolve to a struct/union.
    fn composite_candidates(&self, ty: &str) -> Result<Vec<u32>, BtfError> {
        let Some(ids) = self.by_name.get(ty) else {
            return Ok(Vec::new());
        };
        let mut direct = Vec::new();
        let mut via_typedef = Vec::new();
        for &id in ids {
            let t = self.get(id)?;
            if t.kind.is_composite() {
                direct.push(id);
            } else if t.kind == Kind::Typedef {
                let target = self.skip_modifiers(id)?;
                if target != 0 && self.get(target)?.kind.is_composite() {
                    via_typedef.push(target);
                }
            }
        }
        Ok(if direct.is_empty() {
            via_typedef
        } else {
            direct
        })
    }

    /// Finds `member` in the struct/union named `ty` (first candidate that has it).
    fn find_in_named(&self, ty: &str, member: &str) -> Result<(Found, u32), BtfError> {
        let candidates = self.composite_candidates(ty)?;
        if candidates.is_empty() {
            return Err(BtfError::NotFound {
                what: format!("struct {ty}"),
            });
        }
        for &id in &candidates {
            if let Some(found) = self.find_member(id, member, 0)? {
                return Ok((found, id));
            }
        }
        Err(BtfError::NotFound {
            what: format!("{ty}.{member}"),
        })
    }

    fn member_at(&self, t: &TypeEntry, i: usize) -> Result<Member, BtfError> {
        let base = t.data + i * 12;
        let (name_off, type_id, offset) = match (
            read_u32(&self.data, base),
            read_u32(&self.data, base + 4),
            read_u32(&self.data, base + 8),
        ) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => {
                return Err(malformed(format!(
                    "member {i} at byte {base} out of bounds"
                )));
            }
        };
        let (bit_offset, bitfield_size) = if t.kind_flag {
            (offset & 0x00ff_ffff, offset >> 24)
        } else {
            (offset, 0)
        };
        Ok(Member {
            name_off,
            type_id,
            bit_offset,
            bitfield_size,
        })
    }

    /// Searches struct/union `id` for a member named `name`: its own named members first, then
    /// (recursively) its anonymous struct/union members.
    fn find_member(&self, id: u32, name: &str, depth: usize) -> Result<Option<Found>, BtfError> {
        if depth > MAX_NEST {
            return Err(malformed(format!(
                "anonymous members nested deeper than {MAX_NEST} at type id {id} (cycle?)"
            )));
        }
        let t = *self.get(id)?;
        if !t.kind.is_composite() {
            return Err(malformed(format!(
                "type id {id} is a {}, not a struct/union",
                t.kind.name()
            )));
        }
        for i in 0..usize::from(t.vlen) {
            let m = self.member_at(&t, i)?;
            if m.name_off != 0 && self.name_of(m.name_off)? == name {
                return Ok(Some(Found {
                    member: m,
                    bit_offset: u64::from(m.bit_offset),
                    parent_kind_flag: t.kind_flag,
                }));
            }
        }
        for i in 0..usize::from(t.vlen) {
            let m = self.member_at(&t, i)?;
            if m.name_off != 0 {
                continue;
            }
            let inner = self.skip_modifiers(m.type_id)?;
            if inner == 0 || !self.get(inner)?.kind.is_composite() {
                continue;
            }
            if let Some(found) = self.find_member(inner, name, depth + 1)? {
                return Ok(Some(Found {
                    bit_offset: found.bit_offset + u64::from(m.bit_offset),
                    ..found
                }));
            }
        }
        Ok(None)
    }

    /// The found member's byte offset, or [`BtfError::Bitfield`] if it is not a whole,
    /// byte-aligned member.
    fn byte_offset(&self, found: &Found, ty: &str, member: &str) -> Result<u32, BtfError> {
        let bitfield = || BtfError::Bitfield {
            ty: ty.to_string(),
            member: member.to_string(),
        };
        if found.member.bitfield_size != 0 || !found.bit_offset.is_multiple_of(8) {
            return Err(bitfield());
        }
        if !found.parent_kind_flag {
            // Without kind_flag a bitfield is an INT whose encoding says fewer bits than its
            // size (or a non-zero bit offset).
            let target = self.skip_modifiers(found.member.type_id)?;
            if target != 0 {
                let t = self.get(target)?;
                if t.kind == Kind::Int {
                    let enc = read_u32(&self.data, t.data)
                        .ok_or_else(|| malformed(format!("int type id {target} out of bounds")))?;
                    let (bits, bit_off) = (enc & 0xff, (enc >> 16) & 0xff);
                    if bit_off != 0 || u64::from(bits) != u64::from(t.size_or_type) * 8 {
                        return Err(bitfield());
                    }
                }
            }
        }
        u32::try_from(found.bit_offset / 8)
            .map_err(|_| malformed(format!("offset of {ty}.{member} overflows u32")))
    }

    fn path_offset_in(&self, mut id: u32, ty: &str, steps: &[&str]) -> Result<u32, BtfError> {
        let mut total: u32 = 0;
        let mut prefix = ty.to_string();
        for (i, step) in steps.iter().enumerate() {
            let found = self
                .find_member(id, step, 0)?
                .ok_or_else(|| BtfError::NotFound {
                    what: format!("{prefix}.{step}"),
                })?;
            let off = self.byte_offset(&found, &prefix, step)?;
            total = total
                .checked_add(off)
                .ok_or_else(|| malformed(format!("offset of {prefix}.{step} overflows u32")))?;
            prefix.push('.');
            prefix.push_str(step);
            if i + 1 < steps.len() {
                let next = self.skip_modifiers(found.member.type_id)?;
                let kind = if next == 0 {
                    "void"
                } else {
                    self.get(next)?.kind.name()
                };
                if next == 0 || !self.get(next)?.kind.is_composite() {
                    return Err(BtfError::NotAStruct { what: prefix, kind });
                }
                id = next;
            }
        }
        Ok(total)
    }

    /// Size of type `id` in bytes, after typedefs/qualifiers.
    fn type_size(&self, id: u32, what: &str, depth: usize) -> Result<u32, BtfError> {
        if depth > MAX_NEST {
            return Err(malformed(format!(
                "array types nested deeper than {MAX_NEST} for {what}"
            )));
        }
        let id = self.skip_modifiers(id)?;
        if id == 0 {
            return Err(BtfError::NoSize {
                what: what.to_string(),
                kind: "void",
            });
        }
        let t = self.get(id)?;
        match t.kind {
            Kind::Int | Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Float => {
                Ok(t.size_or_type)
            }
            Kind::Ptr => Ok(PTR_SIZE),
            Kind::Array => {
                let (elem, nelems) = match (
                    read_u32(&self.data, t.data),
                    read_u32(&self.data, t.data + 8),
                ) {
                    (Some(e), Some(n)) => (e, n),
                    _ => return Err(malformed(format!("array type id {id} out of bounds"))),
                };
                let elem_size = self.type_size(elem, what, depth + 1)?;
                elem_size
                    .checked_mul(nelems)
                    .ok_or_else(|| malformed(format!("size of {what} overflows u32")))
            }
            kind => Err(BtfError::NoSize {
                what: what.to_string(),
                kind: kind.name(),
            }),
        }
    }

    /// Parameters of a FUNC_PROTO, not counting a trailing variadic marker (name 0, type 0).
    fn proto_param_count(&self, proto: &TypeEntry) -> Result<u32, BtfError> {
        let vlen = u32::from(proto.vlen);
        if vlen == 0 {
            return Ok(0);
        }
        let last = proto.data + (vlen as usize - 1) * 8;
        let (name_off, ty) = match (read_u32(&self.data, last), read_u32(&self.data, last + 4)) {
            (Some(n), Some(t)) => (n, t),
            _ => {
                return Err(malformed(format!(
                    "function prototype parameter at byte {last} out of bounds"
                )));
            }
        };
        Ok(if name_off == 0 && ty == 0 {
            vlen - 1
        } else {
            vlen
        })
    }
}

/// The NUL-terminated string at `off` in the string section `data[start..end]`.
fn str_at(data: &[u8], start: usize, end: usize, off: u32) -> Result<&str, BtfError> {
    let strs = data.get(start..end).unwrap_or(&[]);
    let tail = strs.get(off as usize..).ok_or_else(|| {
        malformed(format!(
            "name offset {off} is outside the {}-byte string section",
            strs.len()
        ))
    })?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed(format!("string at offset {off} is not NUL-terminated")))?;
    std::str::from_utf8(&tail[..len])
        .map_err(|_| malformed(format!("string at offset {off} is not valid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::Instant;

    // ---- the running kernel's BTF ----------------------------------------------------------

    fn vmlinux() -> &'static Btf {
        static BTF: OnceLock<Btf> = OnceLock::new();
        BTF.get_or_init(|| {
            let path = Path::new(VMLINUX_PATH);
            assert!(
                path.exists(),
                "{VMLINUX_PATH} is missing: these tests need a kernel built with \
                 CONFIG_DEBUG_INFO_BTF=y (the sensor cannot resolve offsets without it)"
            );
            Btf::from_file(path).unwrap_or_else(|e| panic!("parsing {VMLINUX_PATH}: {e}"))
        })
    }

    fn off(ty: &str, member: &str) -> u32 {
        vmlinux()
            .member_offset(ty, member)
            .unwrap_or_else(|e| panic!("member_offset({ty}, {member}): {e}"))
    }

    fn path_off(ty: &str, path: &str) -> u32 {
        vmlinux()
            .member_path_offset(ty, path)
            .unwrap_or_else(|e| panic!("member_path_offset({ty}, {path}): {e}"))
    }

    fn size(ty: &str, member: &str) -> u32 {
        vmlinux()
            .member_size(ty, member)
            .unwrap_or_else(|e| panic!("member_size({ty}, {member}): {e}"))
    }

    /// Every (struct, member) the loader resolves with `member_offset` (`offsets.rs`:
    /// `kernel_config`, and the x86_64 registers of `compat_test`, `syscall_args` and
    /// `exit_regs`: these tests run on x86_64), plus the
    /// other `sock_common` members of [`SKC`] (read through `sock.__sk_common`, below). The
    /// loader's nested paths are in [`PATHS`].
    const FIELDS: &[Member] = &[
        ("pt_regs", "cs"),
        ("pt_regs", "di"),
        ("pt_regs", "si"),
        ("pt_regs", "dx"),
        ("pt_regs", "r10"),
        ("pt_regs", "orig_ax"),
        ("pt_regs", "bx"),
        ("pt_regs", "cx"),
        ("task_struct", "pid"),
        ("task_struct", "tgid"),
        ("task_struct", "real_parent"),
        ("task_struct", "mm"),
        ("task_struct", "signal"),
        ("task_struct", "exit_code"),
        ("task_struct", "files"),
        ("task_struct", "cgroups"),
        ("mm_struct", "arg_start"),
        ("mm_struct", "arg_end"),
        ("signal_struct", "live"),
        ("linux_binprm", "filename"),
        ("linux_binprm", "file"),
        ("cgroup", "kn"),
        ("cgroup", "root"),
        ("cgroup", "level"),
        ("kernfs_node", "id"),
        ("cgroup_root", "hierarchy_id"),
        ("css_set", "dfl_cgrp"),
        ("file", "f_path"),
        ("file", "f_flags"),
        ("file", "private_data"),
        ("files_struct", "fdt"),
        ("fdtable", "fd"),
        ("fdtable", "max_fds"),
        ("path", "mnt"),
        ("path", "dentry"),
        ("dentry", "d_parent"),
        ("vfsmount", "mnt_root"),
        ("mount", "mnt"),
        ("mount", "mnt_parent"),
        ("mount", "mnt_mountpoint"),
        ("socket", "sk"),
        ("sock_common", "skc_family"),
        ("sock_common", "skc_daddr"),
        ("sock_common", "skc_rcv_saddr"),
        ("sock_common", "skc_dport"),
        ("sock_common", "skc_num"),
        ("sock_common", "skc_v6_daddr"),
        ("sock_common", "skc_v6_rcv_saddr"),
    ];

    /// A (struct, member) pair.
    type Member = (&'static str, &'static str);

    /// The paths through embedded structs the loader resolves with `member_path_offset`, each
    /// with its steps (struct, member): the path's offset is the sum of theirs.
    const PATHS: &[(&str, &str, &[Member])] = &[
        (
            "dentry",
            "d_name.name",
            &[("dentry", "d_name"), ("qstr", "name")],
        ),
        (
            "sock",
            "__sk_common.skc_num",
            &[("sock", "__sk_common"), ("sock_common", "skc_num")],
        ),
        (
            "sock",
            "__sk_common.skc_family",
            &[("sock", "__sk_common"), ("sock_common", "skc_family")],
        ),
    ];

    const SKC: &[&str] = &[
        "skc_family",
        "skc_daddr",
        "skc_rcv_saddr",
        "skc_dport",
        "skc_num",
        "skc_v6_daddr",
        "skc_v6_rcv_saddr",
    ];

    #[test]
    fn vmlinux_parses_quickly() {
        let bytes = std::fs::read(VMLINUX_PATH)
            .unwrap_or_else(|e| panic!("{VMLINUX_PATH} is needed for this test: {e}"));
        let len = bytes.len();
        let start = Instant::now();
        let btf = Btf::parse(bytes).expect("parse vmlinux BTF");
        let elapsed = start.elapsed();
        eprintln!(
            "parsed {len} bytes of vmlinux BTF, {} types, {} indexed names, in {elapsed:?}",
            btf.types.len(),
            btf.by_name.len()
        );
        assert!(
            btf.types.len() > 10_000,
            "suspiciously few types: {}",
            btf.types.len()
        );
        // Generous bound for unoptimised test builds on a loaded machine; release is ~10x faster.
        let limit = if cfg!(debug_assertions) { 5_000 } else { 500 };
        assert!(elapsed.as_millis() < limit, "parse took {elapsed:?}");
    }

    #[test]
    fn vmlinux_fields_resolve() {
        for &(ty, member) in FIELDS {
            let o = off(ty, member);
            eprintln!("{ty}.{member} = {o} (size {})", size(ty, member));
        }
        for m in SKC {
            eprintln!(
                "sock.__sk_common.{m} = {}",
                path_off("sock", &format!("__sk_common.{m}"))
            );
        }
        for &(ty, path, steps) in PATHS {
            let o = path_off(ty, path);
            eprintln!("{ty}.{path} = {o}");
            let sum: u32 = steps.iter().map(|&(t, m)| off(t, m)).sum();
            assert_eq!(o, sum, "{ty}.{path} vs its steps {steps:?}");
        }
    }

    #[test]
    fn vmlinux_x86_64_abi() {
        if cfg!(target_arch = "x86_64") {
            // cs follows r15..ip (17 u64s); on newer kernels it sits in an anonymous union.
            assert_eq!(off("pt_regs", "cs"), 136);
            assert_eq!(off("pt_regs", "ip"), 128);
        }
    }

    #[test]
    fn vmlinux_sizes_and_relations() {
        let btf = vmlinux();
        assert_eq!(
            off("mm_struct", "arg_end"),
            off("mm_struct", "arg_start") + 8
        );
        assert_eq!(size("mm_struct", "arg_start"), 8);
        assert_eq!(size("kernfs_node", "id"), 8);
        assert_eq!(size("task_struct", "pid"), 4);
        assert_eq!(size("task_struct", "tgid"), 4);
        assert_eq!(size("task_struct", "real_parent"), 8);
        assert_eq!(size("task_struct", "mm"), 8);
        assert_eq!(size("task_struct", "signal"), 8);
        assert_eq!(size("task_struct", "exit_code"), 4);
        assert_eq!(size("sock_common", "skc_family"), 2);
        assert_eq!(size("sock_common", "skc_daddr"), 4);
        assert_eq!(size("sock_common", "skc_rcv_saddr"), 4);
        assert_eq!(size("sock_common", "skc_dport"), 2);
        assert_eq!(size("sock_common", "skc_num"), 2);
        assert_eq!(size("sock_common", "skc_v6_daddr"), 16);
        assert_eq!(size("sock_common", "skc_v6_rcv_saddr"), 16);
        assert_eq!(
            size("file", "f_path"),
            btf.member_size("path", "dentry").unwrap() * 2
        );
        assert_eq!(size("pt_regs", "cs"), 2);
        // The daddr/rcv_saddr pair and dport/num pair are adjacent halves of a u64 / u32.
        assert_eq!(
            off("sock_common", "skc_rcv_saddr"),
            off("sock_common", "skc_daddr") + 4
        );
        assert_eq!(
            off("sock_common", "skc_num"),
            off("sock_common", "skc_dport") + 2
        );
        assert_eq!(
            off("sock_common", "skc_daddr"),
            off("sock_common", "skc_addrpair")
        );
        assert_eq!(
            off("sock_common", "skc_dport"),
            off("sock_common", "skc_portpair")
        );
        assert!(btf.has_struct("task_struct"));
        assert!(btf.has_struct("sock"));
        assert!(!btf.has_struct("no_such_struct_xyz"));
    }

    #[test]
    fn vmlinux_sock_paths_agree_with_sock_common() {
        let base = off("sock", "__sk_common");
        for m in SKC {
            let via_path = path_off("sock", &format!("__sk_common.{m}"));
            assert_eq!(
                via_path,
                base + off("sock_common", m),
                "sock.__sk_common.{m}"
            );
            // struct sock also #defines sk_* aliases in C, but BTF only has the real member.
        }
        // A path through a pointer member is refused.
        let btf = vmlinux();
        assert!(matches!(
            btf.member_path_offset("task_struct", "signal.live"),
            Err(BtfError::NotAStruct { .. })
        ));
        assert_eq!(
            path_off("task_struct", "signal"),
            off("task_struct", "signal")
        );
        // Embedded struct path: file.f_path.dentry == f_path + path.dentry.
        assert_eq!(
            path_off("file", "f_path.dentry"),
            off("file", "f_path") + off("path", "dentry")
        );
    }

    #[test]
    fn vmlinux_errors() {
        let btf = vmlinux();
        match btf.member_offset("task_struct", "no_such_member") {
            Err(BtfError::NotFound { what }) => assert_eq!(what, "task_struct.no_such_member"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        match btf.member_offset("no_such_struct_xyz", "pid") {
            Err(BtfError::NotFound { what }) => assert!(what.contains("no_such_struct_xyz")),
            other => panic!("expected NotFound, got {other:?}"),
        }
        // skc_reuse is `unsigned char skc_reuse:4`.
        assert!(matches!(
            btf.member_offset("sock_common", "skc_reuse"),
            Err(BtfError::Bitfield { .. })
        ));
        match btf.member_path_offset("sock", "__sk_common.skc_nope") {
            Err(BtfError::NotFound { what }) => assert_eq!(what, "sock.__sk_common.skc_nope"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn vmlinux_funcs_and_tracepoints() {
        let btf = vmlinux();
        let n = btf
            .func_param_count("inet_csk_accept")
            .expect("inet_csk_accept");
        assert!(n == 2 || n == 4, "inet_csk_accept has {n} params");
        assert!(btf.has_func("inet_csk_accept"));
        assert!(btf.has_func("do_sys_openat2"));
        assert!(!btf.has_func("no_such_function_xyz"));
        assert!(!btf.has_func("task_struct"), "a struct is not a function");
        assert!(matches!(
            btf.func_param_count("no_such_function_xyz"),
            Err(BtfError::NotFound { .. })
        ));
        for (tp, want) in [
            ("sched_process_exec", 3),
            ("sched_process_fork", 2),
            ("cgroup_mkdir", 2),
            ("sys_enter", 2),
            ("sys_exit", 2),
            ("sched_process_exit", 1),
        ] {
            let got = btf
                .raw_tracepoint_param_count(tp)
                .unwrap_or_else(|e| panic!("raw tracepoint {tp}: {e}"));
            // sched_process_exit gained a `bool group_dead` argument in 6.16.
            if tp == "sched_process_exit" {
                assert!(got == 1 || got == 2, "{tp}: {got}");
            } else {
                assert_eq!(got, want, "{tp}");
            }
        }
        match btf.raw_tracepoint_param_count("no_such_tp_xyz") {
            Err(BtfError::NotFound { what }) => assert!(what.contains("btf_trace_no_such_tp_xyz")),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    /// Cross-checks every offset the loader resolves ([`FIELDS`], [`PATHS`]) against pahole, an
    /// independent BTF reader: absolute offsets of members, nested anonymous ones included.
    /// pahole is required (Debian package `pahole`; `cargo xtask test` installs it): without it
    /// this test fails rather than passing without having compared anything.
    #[test]
    fn vmlinux_matches_pahole() {
        let structs: std::collections::BTreeSet<&str> = FIELDS
            .iter()
            .map(|f| f.0)
            .chain(PATHS.iter().flat_map(|p| p.2.iter().map(|s| s.0)))
            .collect();
        let mut layouts = std::collections::HashMap::new();
        for ty in structs {
            let out = std::process::Command::new("pahole")
                .args(["-C", ty, VMLINUX_PATH])
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "pahole is needed to cross-check the BTF reader's offsets and cannot be \
                         run ({e}): install Debian package `pahole` (`apt-get install pahole`; \
                         `cargo xtask test` installs it)"
                    )
                });
            assert!(
                out.status.success() && !out.stdout.is_empty(),
                "pahole -C {ty} {VMLINUX_PATH} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            layouts.insert(ty, String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let pahole = |ty: &str, member: &str| {
            let text = &layouts[ty];
            pahole_offset(text, member)
                .unwrap_or_else(|| panic!("{ty}.{member} not in pahole output:\n{text}"))
        };
        let mut checked = 0;
        for &(ty, member) in FIELDS {
            assert_eq!(
                off(ty, member),
                pahole(ty, member),
                "{ty}.{member} vs pahole"
            );
            checked += 1;
        }
        for &(ty, path, steps) in PATHS {
            let want: u32 = steps.iter().map(|&(t, m)| pahole(t, m)).sum();
            assert_eq!(path_off(ty, path), want, "{ty}.{path} vs pahole");
            checked += 1;
        }
        assert_eq!(checked, FIELDS.len() + PATHS.len());
        eprintln!("{checked} offsets agree with pahole");
    }

    /// Offset of the first member line `... name;  /* offset size */` in pahole output.
    fn pahole_offset(text: &str, member: &str) -> Option<u32> {
        text.lines().find_map(|line| {
            let (decl, comment) = line.split_once("/*")?;
            let decl = decl.trim().strip_suffix(';')?;
            let name = decl.rsplit([' ', '\t', '*']).next()?;
            let name = name.split(['[', ':']).next()?;
            if name != member {
                return None;
            }
            comment
                .split_whitespace()
                .next()?
                .trim_end_matches(':')
                .parse()
                .ok()
        })
    }

    #[test]
    fn vmlinux_truncations_are_errors_not_panics() {
        let bytes = std::fs::read(VMLINUX_PATH).expect("read vmlinux BTF");
        let btf = vmlinux();
        let early = HEADER_LEN + btf.types.len(); // somewhere early in the type section
        for cut in [
            0,
            1,
            2,
            4,
            23,
            24,
            25,
            early,
            bytes.len() / 3,
            bytes.len() - 1,
        ] {
            match Btf::parse(bytes[..cut].to_vec()) {
                Err(BtfError::Malformed(msg)) => assert!(!msg.is_empty()),
                other => panic!("cut at {cut}: expected Malformed, got {other:?}"),
            }
        }
    }

    // ---- synthetic blobs -------------------------------------------------------------------

    const INT: u32 = 1;
    const PTR: u32 = 2;
    const ARRAY: u32 = 3;
    const STRUCT: u32 = 4;
    const UNION: u32 = 5;
    const ENUM: u32 = 6;
    const FWD: u32 = 7;
    const TYPEDEF: u32 = 8;
    const VOLATILE: u32 = 9;
    const CONST: u32 = 10;
    const RESTRICT: u32 = 11;
    const FUNC: u32 = 12;
    const FUNC_PROTO: u32 = 13;
    const VAR: u32 = 14;
    const DATASEC: u32 = 15;
    const FLOAT: u32 = 16;
    const DECL_TAG: u32 = 17;
    const TYPE_TAG: u32 = 18;
    const ENUM64: u32 = 19;

    /// Builds little-endian BTF blobs type by type; methods return the new type's id.
    struct Builder {
        types: Vec<u8>,
        strs: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strs: vec![0],
                next_id: 1,
            }
        }

        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strs.len() as u32;
            self.strs.extend_from_slice(name.as_bytes());
            self.strs.push(0);
            off
        }

        fn raw(
            &mut self,
            name_off: u32,
            kind: u32,
            kflag: bool,
            vlen: u32,
            st: u32,
            data: &[u32],
        ) -> u32 {
            let info = (u32::from(kflag) << 31) | (kind << 24) | vlen;
            for w in [name_off, info, st].iter().chain(data) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.next_id += 1;
            self.next_id - 1
        }

        fn ty(
            &mut self,
            name: &str,
            kind: u32,
            kflag: bool,
            vlen: u32,
            st: u32,
            data: &[u32],
        ) -> u32 {
            let n = self.s(name);
            self.raw(n, kind, kflag, vlen, st, data)
        }

        fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
            self.ty(name, INT, false, 0, size, &[bits])
        }

        fn ptr(&mut self, to: u32) -> u32 {
            self.ty("", PTR, false, 0, to, &[])
        }

        fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.ty(name, TYPEDEF, false, 0, to, &[])
        }

        fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
            self.ty("", ARRAY, false, 0, 0, &[elem, index, n])
        }

        /// Members are (name, type, bit offset, bitfield size); kind_flag is set when any
        /// bitfield size is given.
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let kflag = members.iter().any(|m| m.3 != 0);
            let mut data = Vec::new();
            for &(mname, mty, bitoff, bits) in members {
                let off = if kflag { (bits << 24) | bitoff } else { bitoff };
                data.extend([self.s(mname), mty, off]);
            }
            self.ty(name, kind, kflag, members.len() as u32, size, &data)
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
            self.composite(STRUCT, name, size, &m)
        }

        fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
            self.composite(UNION, name, size, &m)
        }

        fn proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
            let mut data = Vec::new();
            for &(pname, pty) in params {
                data.extend([self.s(pname), pty]);
            }
            self.ty("", FUNC_PROTO, false, params.len() as u32, ret, &data)
        }

        fn func(&mut self, name: &str, proto: u32) -> u32 {
            self.ty(name, FUNC, false, 1, proto, &[])
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.extend([1, 0]);
            let tl = self.types.len() as u32;
            for w in [24, 0, tl, tl, self.strs.len() as u32] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strs);
            out
        }
    }

    /// A blob exercising every kind (so trailing-data sizes are all walked) and the lookups.
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let u8_ = b.int("unsigned char", 1, 8);
        let u16_ = b.int("short unsigned int", 2, 16);
        let u32_ = b.int("unsigned int", 4, 32);
        let u64_ = b.int("long long unsigned int", 8, 64);
        let int3 = b.int("int", 4, 3); // old-style (no kind_flag) 3-bit bitfield type
        // One of each remaining kind, before the structs, to check record sizes.
        let n = b.s("E_A");
        let n2 = b.s("E_B");
        let en = b.ty("color", ENUM, false, 2, 4, &[n, 0, n2, 1]);
        b.ty("fwd_only", FWD, false, 0, 0, &[]);
        let vol = b.ty("", VOLATILE, false, 0, u32_, &[]);
        let cst = b.ty("", CONST, false, 0, vol, &[]);
        let vp = b.ptr(0);
        b.ty("", RESTRICT, false, 0, vp, &[]);
        let var = b.ty("some_var", VAR, false, 0, u32_, &[1]);
        b.ty(".data", DATASEC, false, 1, 4, &[var, 0, 4]);
        b.ty("double", FLOAT, false, 0, 8, &[]);
        b.ty("a_tag", DECL_TAG, false, 0, var, &[u32::MAX]);
        let tt = b.ty("user", TYPE_TAG, false, 0, u64_, &[]);
        let n3 = b.s("BIG");
        let e64 = b.ty("big_enum", ENUM64, false, 1, 8, &[n3, 1, 2]);

        // struct outer { u64 x; union { struct { u32 a; u32 b; }; u64 pair;
        //   const volatile anon_t; }; u16 tail; }
        let inner = b.strukt("", 8, &[("a", u32_, 0), ("b", u32_, 32)]);
        let deep = b.strukt("", 4, &[("deepest", u32_, 0)]);
        let deep_td = b.typedef("deep_anon_t", deep);
        let deep_c = b.ty("", CONST, false, 0, deep_td, &[]);
        let inner2 = b.strukt("", 8, &[("c", u32_, 0), ("", deep_c, 32)]);
        let un = b.union("", 8, &[("", inner, 0), ("pair", u64_, 0), ("", inner2, 0)]);
        let arr = b.array(u8_, u32_, 16);
        let arr2 = b.array(arr, u32_, 3);
        let outer = b.strukt(
            "outer",
            112,
            &[
                ("x", u64_, 0),
                ("", un, 64),
                ("tail", u16_, 128),
                ("name", arr, 144),
                ("grid", arr2, 272),
                ("color", en, 672),
                ("cv", cst, 704),
                ("tagged", tt, 768),
                ("big", e64, 832),
            ],
        );
        // Bitfields: kind_flag style and old INT-encoding style.
        b.composite(
            STRUCT,
            "flags_kf",
            8,
            &[
                ("lo", u32_, 0, 3),
                ("hi", u32_, 3, 5),
                ("whole", u32_, 32, 0),
            ],
        );
        b.strukt(
            "flags_old",
            8,
            &[("three", int3, 0), ("odd", u32_, 4), ("ok", u32_, 32)],
        );
        // typedef struct { u32 v; u32 w; } anon_td_t;  typedef struct outer outer_t;
        let anon_td = b.strukt("", 8, &[("v", u32_, 0), ("w", u32_, 32)]);
        b.typedef("anon_td_t", anon_td);
        b.typedef("outer_t", outer);
        // struct holder { struct outer *p; outer_t emb; };
        let p = b.ptr(outer);
        let outer_t = b.typedef("outer_t2", outer);
        b.strukt("holder", 120, &[("p", p, 0), ("emb", outer_t, 64)]);
        // Functions and a raw tracepoint typedef.
        let pr = b.proto(u32_, &[("a", u32_), ("b", p)]);
        b.func("do_thing", pr);
        let varargs = b.proto(u32_, &[("fmt", vp), ("", 0)]);
        b.func("printk_like", varargs);
        let tp = b.proto(0, &[("", vp), ("x", u32_), ("y", p)]);
        let tpp = b.ptr(tp);
        b.typedef("btf_trace_my_event", tpp);
        // Two same-named static functions with different arities.
        let p1 = b.proto(0, &[("a", u32_)]);
        b.func("dup", p1);
        b.func("dup", pr);
        b.build()
    }

    fn sample_btf() -> Btf {
        Btf::parse(sample()).expect("sample blob parses")
    }

    #[test]
    fn synthetic_anonymous_nesting() {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("outer", "x").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 12);
        assert_eq!(btf.member_offset("outer", "pair").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
        // anonymous struct behind const + typedef, two levels down
        assert_eq!(btf.member_offset("outer", "deepest").unwrap(), 12);
        assert_eq!(btf.member_offset("outer", "tail").unwrap(), 16);
        assert_eq!(btf.member_size("outer", "deepest").unwrap(), 4);
        assert_eq!(btf.member_size("outer", "pair").unwrap(), 8);
        match btf.member_offset("outer", "nope") {
            Err(BtfError::NotFound { what }) => assert_eq!(what, "outer.nope"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        match btf.member_offset("missing", "x") {
            Err(BtfError::NotFound { what }) => assert_eq!(what, "struct missing"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn synthetic_sizes() {
        let btf = sample_btf();
        assert_eq!(btf.member_size("outer", "x").unwrap(), 8);
        assert_eq!(btf.member_size("outer", "tail").unwrap(), 2);
        assert_eq!(btf.member_size("outer", "name").unwrap(), 16);
        assert_eq!(btf.member_size("outer", "grid").unwrap(), 48);
        assert_eq!(btf.member_size("outer", "color").unwrap(), 4);
        assert_eq!(btf.member_size("outer", "cv").unwrap(), 4);
        assert_eq!(btf.member_size("outer", "tagged").unwrap(), 8);
        assert_eq!(btf.member_size("outer", "big").unwrap(), 8);
        assert_eq!(btf.member_size("holder", "p").unwrap(), 8);
        assert_eq!(btf.member_size("holder", "emb").unwrap(), 112);
        assert_eq!(btf.member_offset("outer", "grid").unwrap(), 34);
        assert_eq!(btf.member_offset("outer", "big").unwrap(), 104);
    }

    #[test]
    fn synthetic_bitfields() {
        let btf = sample_btf();
        for (ty, m) in [
            ("flags_kf", "lo"),
            ("flags_kf", "hi"),
            ("flags_old", "three"),
            ("flags_old", "odd"),
        ] {
            match btf.member_offset(ty, m) {
                Err(BtfError::Bitfield { ty: t, member }) => {
                    assert_eq!((t.as_str(), member.as_str()), (ty, m))
                }
                other => panic!("{ty}.{m}: expected Bitfield, got {other:?}"),
            }
            assert!(matches!(
                btf.member_size(ty, m),
                Err(BtfError::Bitfield { .. })
            ));
        }
        assert_eq!(btf.member_offset("flags_kf", "whole").unwrap(), 4);
        assert_eq!(btf.member_offset("flags_old", "ok").unwrap(), 4);
    }

    #[test]
    fn synthetic_typedefs() {
        let btf = sample_btf();
        assert!(btf.has_struct("anon_td_t"));
        assert!(btf.has_struct("outer_t"));
        assert!(btf.has_struct("outer"));
        assert!(
            !btf.has_struct("fwd_only"),
            "a forward declaration is not a struct"
        );
        assert!(!btf.has_struct("do_thing"));
        assert_eq!(btf.member_offset("anon_td_t", "w").unwrap(), 4);
        assert_eq!(btf.member_offset("outer_t", "b").unwrap(), 12);
        assert_eq!(btf.member_offset("holder", "emb").unwrap(), 8);
    }

    #[test]
    fn synthetic_paths() {
        let btf = sample_btf();
        assert_eq!(btf.member_path_offset("holder", "emb.tail").unwrap(), 24);
        assert_eq!(btf.member_path_offset("holder", "emb.b").unwrap(), 20);
        assert_eq!(btf.member_path_offset("holder", "emb").unwrap(), 8);
        match btf.member_path_offset("holder", "p.tail") {
            Err(BtfError::NotAStruct { what, kind }) => {
                assert_eq!((what.as_str(), kind), ("holder.p", "pointer"))
            }
            other => panic!("expected NotAStruct, got {other:?}"),
        }
        match btf.member_path_offset("holder", "emb.nope") {
            Err(BtfError::NotFound { what }) => assert_eq!(what, "holder.emb.nope"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(matches!(
            btf.member_path_offset("holder", "emb..tail"),
            Err(BtfError::NotFound { .. })
        ));
        assert!(matches!(
            btf.member_path_offset("holder", ""),
            Err(BtfError::NotFound { .. })
        ));
        assert!(matches!(
            btf.member_path_offset("nope", "a.b"),
            Err(BtfError::NotFound { .. })
        ));
    }

    #[test]
    fn synthetic_funcs() {
        let btf = sample_btf();
        assert_eq!(btf.func_param_count("do_thing").unwrap(), 2);
        assert_eq!(
            btf.func_param_count("printk_like").unwrap(),
            1,
            "varargs not counted"
        );
        assert!(btf.has_func("do_thing"));
        assert!(!btf.has_func("outer"));
        assert!(matches!(
            btf.func_param_count("dup"),
            Err(BtfError::Ambiguous { .. })
        ));
        assert_eq!(btf.raw_tracepoint_param_count("my_event").unwrap(), 2);
        assert!(matches!(
            btf.raw_tracepoint_param_count("other"),
            Err(BtfError::NotFound { .. })
        ));
    }

    fn expect_malformed(bytes: Vec<u8>, needle: &str) {
        match Btf::parse(bytes) {
            Err(BtfError::Malformed(msg)) => {
                assert!(
                    msg.contains(needle),
                    "message {msg:?} should mention {needle:?}"
                )
            }
            other => panic!("expected Malformed({needle}), got {other:?}"),
        }
    }

    #[test]
    fn synthetic_bad_magic_and_header() {
        let good = sample();
        let mut bad = good.clone();
        bad[0] = 0x00;
        expect_malformed(bad, "magic");
        let mut be = good.clone();
        be[0..2].copy_from_slice(&BTF_MAGIC.to_be_bytes());
        assert!(matches!(Btf::parse(be), Err(BtfError::BigEndian)));
        let mut ver = good.clone();
        ver[2] = 2;
        expect_malformed(ver, "version");
        let mut hdr = good.clone();
        hdr[4..8].copy_from_slice(&8u32.to_le_bytes());
        expect_malformed(hdr, "header length");
        expect_malformed(Vec::new(), "shorter than");
        expect_malformed(good[..10].to_vec(), "shorter than");
    }

    #[test]
    fn synthetic_truncated() {
        let good = sample();
        // File cut short: the string section no longer fits.
        expect_malformed(good[..good.len() - 5].to_vec(), "string section");
        // File cut inside the type section.
        expect_malformed(good[..100].to_vec(), "section");
        // Header claims a type section ending in the middle of a record.
        let mut b = Builder::new();
        let u = b.int("u32", 4, 32);
        b.strukt("s", 8, &[("a", u, 0), ("b", u, 32)]);
        let mut blob = b.build();
        let type_len = read_u32(&blob, 12).unwrap();
        blob[12..16].copy_from_slice(&(type_len - 8).to_le_bytes());
        expect_malformed(blob.clone(), "truncated");
        blob[12..16].copy_from_slice(&(type_len - 30).to_le_bytes());
        expect_malformed(blob, "truncated");
        // String section without its final NUL.
        let mut blob = b.build();
        let n = blob.len();
        blob[n - 1] = b'x';
        expect_malformed(blob, "NUL");
    }

    #[test]
    fn synthetic_string_offset_out_of_range() {
        let mut b = Builder::new();
        let u = b.int("u32", 4, 32);
        b.raw(10_000, STRUCT, false, 0, 0, &[]);
        let _ = u;
        expect_malformed(b.build(), "name offset 10000");
        // A member name out of range.
        let mut b = Builder::new();
        let u = b.int("u32", 4, 32);
        b.ty("s", STRUCT, false, 1, 4, &[9_999, u, 0]);
        expect_malformed(b.build(), "name offset 9999");
    }

    #[test]
    fn synthetic_unknown_kind_and_bad_refs() {
        let mut b = Builder::new();
        b.ty("x", 25, false, 0, 0, &[]);
        expect_malformed(b.build(), "unknown BTF kind 25");
        // Dangling member type id and a typedef cycle: lookup errors, no panic.
        let mut b = Builder::new();
        b.strukt("dangling", 4, &[("", 999, 0)]);
        let t = b.next_id;
        b.typedef("loop_t", t); // typedef to itself
        b.strukt("looped", 4, &[("m", t, 0)]);
        let btf = Btf::parse(b.build()).unwrap();
        assert!(matches!(
            btf.member_offset("dangling", "x"),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_size("looped", "m"),
            Err(BtfError::Malformed(_))
        ));
        assert!(!btf.has_struct("loop_t"));
        // A struct that contains itself anonymously.
        let mut b = Builder::new();
        let id = b.next_id;
        b.strukt("selfish", 4, &[("", id, 0)]);
        let btf = Btf::parse(b.build()).unwrap();
        assert!(matches!(
            btf.member_offset("selfish", "x"),
            Err(BtfError::Malformed(_))
        ));
    }

    /// Corrupts the sample blob many ways; parse and every query must return, never panic.
    #[test]
    fn synthetic_corruption_never_panics() {
        let good = sample();
        let queries = |btf: &Btf| {
            for (ty, m) in [
                ("outer", "deepest"),
                ("outer", "grid"),
                ("holder", "emb"),
                ("flags_kf", "lo"),
            ] {
                let _ = btf.member_offset(ty, m);
                let _ = btf.member_size(ty, m);
            }
            let _ = btf.member_path_offset("holder", "emb.b");
            let _ = btf.has_struct("anon_td_t");
            let _ = btf.func_param_count("do_thing");
            let _ = btf.raw_tracepoint_param_count("my_event");
        };
        for cut in 0..good.len() {
            if let Ok(btf) = Btf::parse(good[..cut].to_vec()) {
                queries(&btf);
            }
        }
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut blob = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() % blob.len() as u64) as usize;
                blob[i] = next() as u8;
            }
            if let Ok(btf) = Btf::parse(blob) {
                queries(&btf);
            }
        }
    }
}
