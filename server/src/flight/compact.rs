//! String and binary views as Flight sends them.
//!
//! DataFusion reads Parquet strings as views that point into whole decoded pages, so an
//! 8,192-row batch can hold megabytes of page data it does not use. Arrow IPC writes a
//! view array's data buffers whole, and the Flight encoder splits a batch it thinks is
//! large into slices that each carry all of them again. A batch whose views use less
//! than half of what they hold is compacted (`gc`) before it is encoded: one copy of
//! the used bytes instead of sending the unused ones, possibly several times.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericByteViewArray, RecordBatch};
use datafusion::arrow::datatypes::{ByteViewType, DataType};

/// `batch` with its wasteful view columns compacted.
pub(crate) fn compact_views(batch: RecordBatch) -> RecordBatch {
    let any_wasteful = batch
        .columns()
        .iter()
        .any(|column| match column.data_type() {
            DataType::Utf8View => wasteful(column.as_string_view()),
            DataType::BinaryView => wasteful(column.as_binary_view()),
            _ => false,
        });
    if !any_wasteful {
        return batch;
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View if wasteful(column.as_string_view()) => {
                Arc::new(column.as_string_view().gc()) as ArrayRef
            }
            DataType::BinaryView if wasteful(column.as_binary_view()) => {
                Arc::new(column.as_binary_view().gc()) as ArrayRef
            }
            _ => column.clone(),
        })
        .collect();
    // Same schema, same lengths: cannot fail; keep the original if it ever does.
    RecordBatch::try_new(batch.schema(), columns).unwrap_or(batch)
}

/// True when `array`'s data buffers hold more than twice the bytes its views use.
fn wasteful<T: ByteViewType + ?Sized>(array: &GenericByteViewArray<T>) -> bool {
    let held: usize = array.data_buffers().iter().map(|b| b.len()).sum();
    if held == 0 {
        return false;
    }
    // Values of up to 12 bytes live in the view itself.
    let used: usize = array
        .views()
        .iter()
        .map(|view| *view as u32 as usize)
        .filter(|len| *len > 12)
        .sum();
    held > 2 * used
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringViewArray;
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(array: StringViewArray) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(array)]).unwrap()
    }

    fn held(batch: &RecordBatch) -> usize {
        let array = batch.column(0).as_string_view();
        array.data_buffers().iter().map(|b| b.len()).sum()
    }

    #[test]
    fn a_slice_of_a_large_view_array_is_compacted_with_the_same_values() {
        let values: Vec<String> = (0..1000)
            .map(|i| format!("a value longer than twelve {i}"))
            .collect();
        let all = StringViewArray::from_iter_values(values.iter());
        let slice = batch(all.slice(10, 5));
        let compacted = compact_views(slice.clone());
        assert!(
            held(&compacted) < held(&slice) / 10,
            "{} vs {}",
            held(&compacted),
            held(&slice)
        );
        assert_eq!(compacted, slice);
    }

    #[test]
    fn a_dense_view_array_is_left_alone() {
        let values: Vec<String> = (0..100)
            .map(|i| format!("a value longer than twelve {i}"))
            .collect();
        let dense = batch(StringViewArray::from_iter_values(values.iter()));
        let same = compact_views(dense.clone());
        assert!(Arc::ptr_eq(same.column(0), dense.column(0)));
    }
}
