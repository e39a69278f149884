//! `quartiles(x)`: the 25th, 50th and 75th percentiles of `x` from one t-digest.
//!
//! `profile` needs all three for every numeric column. Three `approx_percentile_cont`
//! calls keep three digests, each sorting every batch of the column; this aggregate
//! keeps DataFusion's own accumulator at the median and reads the quartiles off a copy
//! of the same digest at the end, so the answers are the ones
//! `approx_percentile_cont` gives (a unit test holds them equal) at a third of the cost.
//!
//! It is registered only on the state `profile` and `quality` plan with, not in the
//! SQL users see.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::approx_percentile_cont::{
    ApproxPercentileAccumulator, ApproxPercentileCont,
};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// The name profile's SQL calls it by.
pub(crate) const NAME: &str = "__insightflow_quartiles";

static FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    ["p25", "p50", "p75"]
        .into_iter()
        .map(|name| Field::new(name, DataType::Float64, true))
        .collect()
});

pub(crate) fn udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::from(Quartiles {
        signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Quartiles {
    signature: Signature,
}

impl AggregateUDFImpl for Quartiles {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(QuartilesAccumulator(
            ApproxPercentileAccumulator::new(0.5, DataType::Float64),
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // The digest's state, as DataFusion's own accumulator lays it out.
        ApproxPercentileCont::new().state_fields(args)
    }
}

#[derive(Debug)]
struct QuartilesAccumulator(ApproxPercentileAccumulator);

impl Accumulator for QuartilesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let digest: Vec<ArrayRef> = self
            .0
            .state()?
            .iter()
            .map(ScalarValue::to_array)
            .collect::<Result<_>>()?;
        let float = |v: ScalarValue| match v {
            ScalarValue::Float64(v) => v,
            _ => None,
        };
        let at = |percentile: f64| -> Result<Option<f64>> {
            let mut copy = ApproxPercentileAccumulator::new(percentile, DataType::Float64);
            copy.merge_batch(&digest)?;
            Ok(float(copy.evaluate()?))
        };
        let values = [at(0.25)?, float(self.0.evaluate()?), at(0.75)?];
        let columns: Vec<ArrayRef> = values
            .into_iter()
            .map(|v| Arc::new(Float64Array::from(vec![v])) as ArrayRef)
            .collect();
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            FIELDS.clone(),
            columns,
            None,
        )?)))
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Float64Array};
    use datafusion::arrow::datatypes::Float64Type;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn the_same_answers_as_three_approx_percentile_conts() {
        let ctx = SessionContext::new();
        ctx.register_udaf(udaf().as_ref().clone());
        // Skewed values in several batches and partitions, with nulls.
        let batches: Vec<RecordBatch> = (0..6)
            .map(|b| {
                let values = Float64Array::from_iter((0..5_000).map(|i| {
                    let x = (b * 5_000 + i) as f64;
                    (i % 97 != 0).then_some((x * 7919.0) % 10_007.0 * (x % 13.0))
                }));
                RecordBatch::try_from_iter([("x", Arc::new(values) as ArrayRef)]).unwrap()
            })
            .collect();
        let table = datafusion::datasource::MemTable::try_new(
            batches[0].schema(),
            batches.chunks(2).map(<[RecordBatch]>::to_vec).collect(),
        )
        .unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let sql = format!(
            "SELECT get_field({NAME}(x), 'p25'), get_field({NAME}(x), 'p50'),
                    get_field({NAME}(x), 'p75'),
                    approx_percentile_cont(0.25) WITHIN GROUP (ORDER BY x),
                    approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY x),
                    approx_percentile_cont(0.75) WITHIN GROUP (ORDER BY x)
             FROM t"
        );
        let row = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let value = |i: usize| row[0].column(i).as_primitive::<Float64Type>().value(0);
        for i in 0..3 {
            assert_eq!(value(i), value(i + 3), "quartile {i}");
        }
        assert!(value(0) < value(1) && value(1) < value(2));

        let empty = ctx
            .sql(&format!("SELECT {NAME}(x) FROM t WHERE x > 1e12"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let quartiles = empty[0].column(0).as_struct();
        assert!((0..3).all(|i| quartiles.column(i).is_null(0)));
    }
}
