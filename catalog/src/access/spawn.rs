//! The caller travels into the tasks DataFusion spawns.
//!
//! DataFusion runs parts of a plan on tasks of their own (repartitioning, parallel
//! scans, spilling). Task-locals do not cross `tokio::spawn`, so without this those
//! parts would run with no caller: listings would come out empty and checks made
//! while running would fail closed. DataFusion's join-set tracer hook sees every
//! spawn from the spawning task, where the caller is known, and wraps the new work
//! in the same scope.

use std::any::Any;

use datafusion::common::runtime::{set_join_set_tracer, JoinSetTracer};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Caller, CALLER};

struct CarryCaller;

impl JoinSetTracer for CarryCaller {
    fn trace_future(
        &self,
        fut: BoxFuture<'static, Box<dyn Any + Send>>,
    ) -> BoxFuture<'static, Box<dyn Any + Send>> {
        match Caller::current() {
            Some(caller) => caller.scope(fut).boxed(),
            None => fut,
        }
    }

    fn trace_block(
        &self,
        f: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>,
    ) -> Box<dyn FnOnce() -> Box<dyn Any + Send> + Send> {
        match Caller::current() {
            Some(caller) => Box::new(move || CALLER.sync_scope(caller, f)),
            None => f,
        }
    }
}

static CARRY_CALLER: CarryCaller = CarryCaller;

/// Installs the hook for this process; later calls do nothing.
pub fn carry_caller_into_spawned_tasks() {
    let _ = set_join_set_tracer(&CARRY_CALLER);
}
