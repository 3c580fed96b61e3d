//! The few tables of the TFLite schema (`tensorflow/lite/schema/schema.fbs`, file identifier
//! `TFL3`) that the importer reads, written by hand on the `flatbuffers` crate.
//!
//! Each table is a thin wrapper over [`flatbuffers::Table`] with a [`Verifiable`] impl that lists
//! exactly the fields its accessors read, with the same types. [`verified_model`] runs the
//! crate's verifier over the whole buffer before anything is followed, so every accessor reads
//! an offset, vector or scalar that the verifier has bounds-checked: that is what makes the
//! `unsafe` follows below sound (the same contract as flatc's generated code). Fields the
//! importer does not need are neither verified nor read. Strings are read as byte vectors
//! (names need not be UTF-8 to be useful in an error message).
//!
//! Field slots are the schema's field ids: voffset = 4 + 2 x id.

use flatbuffers::{Follow, ForwardsUOffset, InvalidFlatbuffer, Table, Vector, Verifiable, Verifier, VerifierOptions};

/// The vtable offset of field `id`.
pub(super) const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// Builtin-options union members the importer reads (schema `BuiltinOptions`).
pub const OPTIONS_FULLY_CONNECTED: u8 = 8;
pub const OPTIONS_BATCH_MATMUL: u8 = 101;
pub const OPTIONS_GELU: u8 = 116;

/// Declares a table wrapper with its `Follow` impl.
macro_rules! table {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'a>(::flatbuffers::Table<'a>);

        impl<'a> ::flatbuffers::Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            #[inline]
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: the caller guarantees `loc` holds a verified table (see the module docs).
                $name(unsafe { ::flatbuffers::Table::new(buf, loc) })
            }
        }
    };
}
pub(super) use table;

/// Reads field `slot` of `table` as `T`.
///
/// # Safety
/// The verifier must have checked field `slot` of this table as type `T` (each accessor below
/// pairs with the `visit_field` of the same slot and type in its table's `Verifiable` impl).
#[inline]
pub(super) unsafe fn get<'a, T: Follow<'a> + 'a>(table: &Table<'a>, slot: u16) -> Option<T::Inner> {
    // SAFETY: forwarded to the caller.
    unsafe { table.get::<T>(slot, None) }
}

pub(super) type Bytes<'a> = ForwardsUOffset<Vector<'a, u8>>;
type Ints<'a> = ForwardsUOffset<Vector<'a, i32>>;
pub(super) type TableVec<'a, T> = ForwardsUOffset<Vector<'a, ForwardsUOffset<T>>>;

table!(
    /// `table Model`: operator_codes (1), subgraphs (2), buffers (4), metadata (6).
    ModelTable
);
table!(
    /// `table Metadata`: name (0), buffer (1): a named buffer, such as `TFLITE_METADATA`.
    MetadataTable
);
table!(
    /// `table OperatorCode`: deprecated_builtin_code (0), custom_code (1), version (2), builtin_code (3).
    OperatorCodeTable
);
table!(
    /// `table SubGraph`: tensors (0), inputs (1), outputs (2), operators (3), name (4).
    SubGraphTable
);
table!(
    /// `table Tensor`: shape (0), type (1), buffer (2), name (3), quantization (4), shape_signature (7).
    TensorTable
);
table!(
    /// `table QuantizationParameters`: scale (2), zero_point (3), details_type (4), quantized_dimension (6).
    QuantTable
);
table!(
    /// `table Buffer`: data (0), offset (1), size (2).
    BufferTable
);
table!(
    /// `table Operator`: opcode_index (0), inputs (1), outputs (2), builtin_options_type (3), builtin_options (4).
    OperatorTable
);
table!(
    /// `table FullyConnectedOptions`: fused_activation_function (0), weights_format (1), keep_num_dims (2), asymmetric_quantize_inputs (3).
    FullyConnectedOptionsTable
);
table!(
    /// `table BatchMatMulOptions`: adj_x (0), adj_y (1), asymmetric_quantize_inputs (2).
    BatchMatMulOptionsTable
);
table!(
    /// `table GeluOptions`: approximate (0).
    GeluOptionsTable
);

impl Verifiable for ModelTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<OperatorCodeTable>>("operator_codes", slot(1), false)?
            .visit_field::<TableVec<SubGraphTable>>("subgraphs", slot(2), false)?
            .visit_field::<TableVec<BufferTable>>("buffers", slot(4), false)?
            .visit_field::<TableVec<MetadataTable>>("metadata", slot(6), false)?
            .finish();
        Ok(())
    }
}

impl<'a> ModelTable<'a> {
    pub fn operator_codes(&self) -> Option<Vector<'a, ForwardsUOffset<OperatorCodeTable<'a>>>> {
        // SAFETY: verified as TableVec<OperatorCodeTable> at slot 1.
        unsafe { get::<TableVec<OperatorCodeTable>>(&self.0, slot(1)) }
    }
    pub fn subgraphs(&self) -> Option<Vector<'a, ForwardsUOffset<SubGraphTable<'a>>>> {
        // SAFETY: verified as TableVec<SubGraphTable> at slot 2.
        unsafe { get::<TableVec<SubGraphTable>>(&self.0, slot(2)) }
    }
    pub fn buffers(&self) -> Option<Vector<'a, ForwardsUOffset<BufferTable<'a>>>> {
        // SAFETY: verified as TableVec<BufferTable> at slot 4.
        unsafe { get::<TableVec<BufferTable>>(&self.0, slot(4)) }
    }
    pub fn metadata(&self) -> Option<Vector<'a, ForwardsUOffset<MetadataTable<'a>>>> {
        // SAFETY: verified as TableVec<MetadataTable> at slot 6.
        unsafe { get::<TableVec<MetadataTable>>(&self.0, slot(6)) }
    }
}

impl Verifiable for MetadataTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Bytes>("name", slot(0), false)?
            .visit_field::<u32>("buffer", slot(1), false)?
            .finish();
        Ok(())
    }
}

impl<'a> MetadataTable<'a> {
    pub fn name(&self) -> &'a [u8] {
        // SAFETY: verified as a byte vector at slot 0.
        unsafe { get::<Bytes>(&self.0, slot(0)) }
            .map(|b| b.bytes())
            .unwrap_or(&[])
    }
    pub fn buffer(&self) -> u32 {
        // SAFETY: verified as u32 at slot 1.
        unsafe { get::<u32>(&self.0, slot(1)) }.unwrap_or(0)
    }
}

impl Verifiable for OperatorCodeTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<i8>("deprecated_builtin_code", slot(0), false)?
            .visit_field::<Bytes>("custom_code", slot(1), false)?
            .visit_field::<i32>("version", slot(2), false)?
            .visit_field::<i32>("builtin_code", slot(3), false)?
            .finish();
        Ok(())
    }
}

impl<'a> OperatorCodeTable<'a> {
    /// The builtin operator: the larger of the two code fields (the schema's rule since
    /// builtin_code outgrew a byte).
    pub fn builtin_code(&self) -> i32 {
        // SAFETY: verified as i8 at slot 0 and i32 at slot 3.
        let (old, new) = unsafe {
            (
                get::<i8>(&self.0, slot(0)).unwrap_or(0),
                get::<i32>(&self.0, slot(3)).unwrap_or(0),
            )
        };
        (old as i32).max(new)
    }
    pub fn custom_code(&self) -> Option<&'a [u8]> {
        // SAFETY: verified as a byte vector at slot 1.
        unsafe { get::<Bytes>(&self.0, slot(1)) }.map(|b| b.bytes())
    }
}

impl Verifiable for SubGraphTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<TensorTable>>("tensors", slot(0), false)?
            .visit_field::<Ints>("inputs", slot(1), false)?
            .visit_field::<Ints>("outputs", slot(2), false)?
            .visit_field::<TableVec<OperatorTable>>("operators", slot(3), false)?
            .visit_field::<Bytes>("name", slot(4), false)?
            .finish();
        Ok(())
    }
}

impl<'a> SubGraphTable<'a> {
    pub fn tensors(&self) -> Option<Vector<'a, ForwardsUOffset<TensorTable<'a>>>> {
        // SAFETY: verified at slot 0 with this type.
        unsafe { get::<TableVec<TensorTable>>(&self.0, slot(0)) }
    }
    pub fn inputs(&self) -> Option<Vector<'a, i32>> {
        // SAFETY: verified as an i32 vector at slot 1.
        unsafe { get::<Ints>(&self.0, slot(1)) }
    }
    pub fn outputs(&self) -> Option<Vector<'a, i32>> {
        // SAFETY: verified as an i32 vector at slot 2.
        unsafe { get::<Ints>(&self.0, slot(2)) }
    }
    pub fn operators(&self) -> Option<Vector<'a, ForwardsUOffset<OperatorTable<'a>>>> {
        // SAFETY: verified at slot 3 with this type.
        unsafe { get::<TableVec<OperatorTable>>(&self.0, slot(3)) }
    }
}

impl Verifiable for TensorTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Ints>("shape", slot(0), false)?
            .visit_field::<i8>("type", slot(1), false)?
            .visit_field::<u32>("buffer", slot(2), false)?
            .visit_field::<Bytes>("name", slot(3), false)?
            .visit_field::<ForwardsUOffset<QuantTable>>("quantization", slot(4), false)?
            .visit_field::<Ints>("shape_signature", slot(7), false)?
            .finish();
        Ok(())
    }
}

impl<'a> TensorTable<'a> {
    pub fn shape(&self) -> Option<Vector<'a, i32>> {
        // SAFETY: verified as an i32 vector at slot 0.
        unsafe { get::<Ints>(&self.0, slot(0)) }
    }
    /// The shape with -1 for dimensions chosen at run time (absent when all are fixed).
    pub fn shape_signature(&self) -> Option<Vector<'a, i32>> {
        // SAFETY: verified as an i32 vector at slot 7.
        unsafe { get::<Ints>(&self.0, slot(7)) }
    }
    pub fn type_code(&self) -> i8 {
        // SAFETY: verified as i8 at slot 1 (default FLOAT32 = 0).
        unsafe { get::<i8>(&self.0, slot(1)) }.unwrap_or(0)
    }
    pub fn buffer(&self) -> u32 {
        // SAFETY: verified as u32 at slot 2.
        unsafe { get::<u32>(&self.0, slot(2)) }.unwrap_or(0)
    }
    pub fn name(&self) -> &'a [u8] {
        // SAFETY: verified as a byte vector at slot 3.
        unsafe { get::<Bytes>(&self.0, slot(3)) }
            .map(|b| b.bytes())
            .unwrap_or(&[])
    }
    pub fn quantization(&self) -> Option<QuantTable<'a>> {
        // SAFETY: verified as a QuantTable at slot 4.
        unsafe { get::<ForwardsUOffset<QuantTable>>(&self.0, slot(4)) }
    }
}

impl Verifiable for QuantTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<f32>>>("scale", slot(2), false)?
            .visit_field::<ForwardsUOffset<Vector<i64>>>("zero_point", slot(3), false)?
            .visit_field::<u8>("details_type", slot(4), false)?
            .visit_field::<i32>("quantized_dimension", slot(6), false)?
            .finish();
        Ok(())
    }
}

impl<'a> QuantTable<'a> {
    pub fn scale(&self) -> Option<Vector<'a, f32>> {
        // SAFETY: verified as an f32 vector at slot 2.
        unsafe { get::<ForwardsUOffset<Vector<f32>>>(&self.0, slot(2)) }
    }
    pub fn zero_point(&self) -> Option<Vector<'a, i64>> {
        // SAFETY: verified as an i64 vector at slot 3.
        unsafe { get::<ForwardsUOffset<Vector<i64>>>(&self.0, slot(3)) }
    }
    /// Non-zero when the tensor uses custom quantization details instead of scale/zero_point.
    pub fn details_type(&self) -> u8 {
        // SAFETY: verified as u8 at slot 4.
        unsafe { get::<u8>(&self.0, slot(4)) }.unwrap_or(0)
    }
    pub fn quantized_dimension(&self) -> i32 {
        // SAFETY: verified as i32 at slot 6.
        unsafe { get::<i32>(&self.0, slot(6)) }.unwrap_or(0)
    }
}

impl Verifiable for BufferTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Bytes>("data", slot(0), false)?
            .visit_field::<u64>("offset", slot(1), false)?
            .visit_field::<u64>("size", slot(2), false)?
            .finish();
        Ok(())
    }
}

impl<'a> BufferTable<'a> {
    pub fn data(&self) -> Option<&'a [u8]> {
        // SAFETY: verified as a byte vector at slot 0.
        unsafe { get::<Bytes>(&self.0, slot(0)) }.map(|b| b.bytes())
    }
    /// (offset, size) of data stored outside the flatbuffer, from the start of the file.
    pub fn external(&self) -> (u64, u64) {
        // SAFETY: verified as u64 at slots 1 and 2.
        unsafe {
            (
                get::<u64>(&self.0, slot(1)).unwrap_or(0),
                get::<u64>(&self.0, slot(2)).unwrap_or(0),
            )
        }
    }
}

impl Verifiable for OperatorTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u32>("opcode_index", slot(0), false)?
            .visit_field::<Ints>("inputs", slot(1), false)?
            .visit_field::<Ints>("outputs", slot(2), false)?
            .visit_union::<u8, _>(
                "builtin_options_type",
                slot(3),
                "builtin_options",
                slot(4),
                false,
                |key, v, pos| match key {
                    OPTIONS_FULLY_CONNECTED => v.verify_union_variant::<ForwardsUOffset<FullyConnectedOptionsTable>>(
                        "FullyConnectedOptions",
                        pos,
                    ),
                    OPTIONS_BATCH_MATMUL => {
                        v.verify_union_variant::<ForwardsUOffset<BatchMatMulOptionsTable>>("BatchMatMulOptions", pos)
                    }
                    OPTIONS_GELU => v.verify_union_variant::<ForwardsUOffset<GeluOptionsTable>>("GeluOptions", pos),
                    // Other options are never read, so they need no verification.
                    _ => Ok(()),
                },
            )?
            .finish();
        Ok(())
    }
}

impl<'a> OperatorTable<'a> {
    pub fn opcode_index(&self) -> u32 {
        // SAFETY: verified as u32 at slot 0.
        unsafe { get::<u32>(&self.0, slot(0)) }.unwrap_or(0)
    }
    pub fn inputs(&self) -> Option<Vector<'a, i32>> {
        // SAFETY: verified as an i32 vector at slot 1.
        unsafe { get::<Ints>(&self.0, slot(1)) }
    }
    pub fn outputs(&self) -> Option<Vector<'a, i32>> {
        // SAFETY: verified as an i32 vector at slot 2.
        unsafe { get::<Ints>(&self.0, slot(2)) }
    }
    fn options_type(&self) -> u8 {
        // SAFETY: verified as u8 at slot 3 (as the union's key).
        unsafe { get::<u8>(&self.0, slot(3)) }.unwrap_or(0)
    }
    /// The options table when it is a FullyConnectedOptions.
    pub fn fully_connected_options(&self) -> Option<FullyConnectedOptionsTable<'a>> {
        if self.options_type() != OPTIONS_FULLY_CONNECTED {
            return None;
        }
        // SAFETY: the union verifier checked slot 4 as this table when the key is this member.
        unsafe { get::<ForwardsUOffset<FullyConnectedOptionsTable>>(&self.0, slot(4)) }
    }
    pub fn batch_matmul_options(&self) -> Option<BatchMatMulOptionsTable<'a>> {
        if self.options_type() != OPTIONS_BATCH_MATMUL {
            return None;
        }
        // SAFETY: as above, for BatchMatMulOptions.
        unsafe { get::<ForwardsUOffset<BatchMatMulOptionsTable>>(&self.0, slot(4)) }
    }
    pub fn gelu_options(&self) -> Option<GeluOptionsTable<'a>> {
        if self.options_type() != OPTIONS_GELU {
            return None;
        }
        // SAFETY: as above, for GeluOptions.
        unsafe { get::<ForwardsUOffset<GeluOptionsTable>>(&self.0, slot(4)) }
    }
}

impl Verifiable for FullyConnectedOptionsTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<i8>("fused_activation_function", slot(0), false)?
            .visit_field::<i8>("weights_format", slot(1), false)?
            .visit_field::<bool>("keep_num_dims", slot(2), false)?
            .visit_field::<bool>("asymmetric_quantize_inputs", slot(3), false)?
            .finish();
        Ok(())
    }
}

impl FullyConnectedOptionsTable<'_> {
    pub fn fused_activation(&self) -> i8 {
        // SAFETY: verified as i8 at slot 0.
        unsafe { get::<i8>(&self.0, slot(0)) }.unwrap_or(0)
    }
    pub fn weights_format(&self) -> i8 {
        // SAFETY: verified as i8 at slot 1.
        unsafe { get::<i8>(&self.0, slot(1)) }.unwrap_or(0)
    }
    pub fn asymmetric_quantize_inputs(&self) -> bool {
        // SAFETY: verified as bool at slot 3.
        unsafe { get::<bool>(&self.0, slot(3)) }.unwrap_or(false)
    }
}

impl Verifiable for BatchMatMulOptionsTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<bool>("adj_x", slot(0), false)?
            .visit_field::<bool>("adj_y", slot(1), false)?
            .finish();
        Ok(())
    }
}

impl BatchMatMulOptionsTable<'_> {
    pub fn adj(&self) -> (bool, bool) {
        // SAFETY: verified as bool at slots 0 and 1.
        unsafe {
            (
                get::<bool>(&self.0, slot(0)).unwrap_or(false),
                get::<bool>(&self.0, slot(1)).unwrap_or(false),
            )
        }
    }
}

impl Verifiable for GeluOptionsTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<bool>("approximate", slot(0), false)?
            .finish();
        Ok(())
    }
}

impl GeluOptionsTable<'_> {
    pub fn approximate(&self) -> bool {
        // SAFETY: verified as bool at slot 0.
        unsafe { get::<bool>(&self.0, slot(0)) }.unwrap_or(false)
    }
}

/// Verifies `bytes` as a TFLite model and returns its root table.
pub fn verified_model(bytes: &[u8]) -> Result<ModelTable<'_>, InvalidFlatbuffer> {
    let opts = VerifierOptions {
        // Vectors of the whole file may be counted more than once when tables share them.
        max_apparent_size: bytes.len().saturating_mul(4).max(1 << 20),
        ..VerifierOptions::default()
    };
    flatbuffers::root_with_opts::<ModelTable>(&opts, bytes)
}
