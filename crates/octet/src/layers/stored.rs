//! [`Stored`]: a typed slice of a shared [`ModelFile`] that owns its handle on the file.
//!
//! A bound encoder lives as long as its [`crate::Embedder`], not as long as a borrow of the
//! file, so its weights cannot be plain `&[T]` views. Each weight instead keeps an
//! `Arc<ModelFile>` and the byte range of its tensor, found and validated once at bind time;
//! [`Stored::get`] turns it back into a slice on use (a bounds-free re-slice and an alignment
//! check, no look-up by name). Nothing is copied: the weights stay in the memory map.

use crate::error::{Error, Result};
use crate::format::{ModelFile, QuantParam};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::sync::Arc;

/// A slice of `T` inside a shared model file.
pub struct Stored<T> {
    file: Arc<ModelFile>,
    /// Byte offset of the first element in the file.
    start: usize,
    /// Number of elements.
    len: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Stored<T> {
    fn clone(&self) -> Self {
        Stored {
            file: Arc::clone(&self.file),
            start: self.start,
            len: self.len,
            _type: PhantomData,
        }
    }
}

impl<T: Pod> Stored<T> {
    /// Remembers where `slice`, a view handed out by `file`, lies in it.
    pub fn of(file: &Arc<ModelFile>, slice: &[T]) -> Result<Stored<T>> {
        let bytes = file.bytes();
        let size = std::mem::size_of_val(slice);
        let start = if slice.is_empty() {
            0
        } else {
            (slice.as_ptr() as usize)
                .checked_sub(bytes.as_ptr() as usize)
                .filter(|&start| start.checked_add(size).is_some_and(|end| end <= bytes.len()))
                .ok_or_else(|| Error::Internal("a weight view does not lie inside its model file".into()))?
        };
        Ok(Stored {
            file: Arc::clone(file),
            start,
            len: slice.len(),
            _type: PhantomData,
        })
    }

    /// The slice. The range was checked against the file when the view was made and the file
    /// never changes, so this cannot fail; an empty slice would only come back on a bug, and
    /// every kernel then reports the short input as an error.
    pub fn get(&self) -> &[T] {
        let end = self.start + self.len * std::mem::size_of::<T>();
        self.file
            .bytes()
            .get(self.start..end)
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .unwrap_or(&[])
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A quantization parameter kept from the file: one value, or one per channel.
#[derive(Clone)]
pub enum StoredParam<T> {
    /// One value for the whole tensor.
    PerTensor(T),
    /// One value per channel.
    PerChannel(Stored<T>),
}

impl<T: Pod> StoredParam<T> {
    /// Keeps a parameter handed out by `file`.
    pub fn of(file: &Arc<ModelFile>, param: QuantParam<'_, T>) -> Result<StoredParam<T>> {
        Ok(match param {
            QuantParam::PerTensor(v) => StoredParam::PerTensor(v),
            QuantParam::PerChannel(s) => StoredParam::PerChannel(Stored::of(file, s)?),
        })
    }
}
