//! Who may do what: roles, grants, and the caller every statement runs as.
//!
//! Rights are kept with the users in the catalog file. A statement runs inside
//! [`Caller::scope`]; every plan that DataFusion analyses — the statement's own, and the
//! queries that table functions and `ask` plan on its behalf — passes [`CheckAccess`],
//! which finds the tables the plan reads or writes and refuses with SQLSTATE 42501 what
//! the caller was not granted. A plan analysed with no caller at all is refused too: a
//! front end that forgets to say who is asking fails closed.
//!
//! Views are expanded into the plans that use them, so a view is read with the rights of
//! the reader (Postgres' `security_invoker` views): granting a view alone does not open
//! the tables beneath it.

mod plan;
mod spawn;
mod sql;
mod visible;

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::common::TableReference;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::catalog::DEFAULT_SCHEMA;
use crate::error::{Error, Result};
use crate::store::CatalogStore;
use crate::users::RoleLimits;

pub use plan::{check_plan, CheckAccess};
pub use spawn::carry_caller_into_spawned_tasks;
pub use sql::{is_access_statement, normalize_user_statements, run_access_statement};
pub use visible::VisibleCatalog;

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    Select,
    Insert,
    /// Every privilege, and the right to create and drop objects in a granted schema.
    All,
}

impl Privilege {
    fn covers(self, wanted: Privilege) -> bool {
        self == Privilege::All || self == wanted
    }

    fn verb(self) -> &'static str {
        match self {
            Privilege::Select => "read",
            Privilege::Insert => "write to",
            Privilege::All => "change",
        }
    }
}

/// What a grant applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GrantTarget {
    Table {
        schema: String,
        name: String,
    },
    /// Every table of the schema, now and later.
    Schema {
        schema: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantDef {
    pub grantee: String,
    pub privilege: Privilege,
    pub target: GrantTarget,
}

/// The user (or the server itself) a statement runs as.
#[derive(Debug, Clone)]
pub struct Caller {
    name: Arc<str>,
    /// `None`: the server itself (start-up, the demo, `insightflow sql`): no checks.
    store: Option<Arc<CatalogStore>>,
}

tokio::task_local! {
    static CALLER: Caller;
}

impl Caller {
    /// The server itself, for work no client asked for.
    pub fn system() -> Self {
        Self {
            name: Arc::from("insightflow"),
            store: None,
        }
    }

    pub fn user(name: &str, store: Arc<CatalogStore>) -> Self {
        Self {
            name: Arc::from(name),
            store: Some(store),
        }
    }

    /// The caller of the statement running on this task, if any.
    pub fn current() -> Option<Caller> {
        CALLER.try_with(Clone::clone).ok()
    }

    /// Runs `f` as this caller.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CALLER.scope(self, f).await
    }

    /// Polls `stream` as this caller: result streams run after the handler that
    /// planned them has returned, and catalog listings are built while they run.
    pub fn scope_stream<S: Stream + Unpin>(self, stream: S) -> InScope<S> {
        self.scope_ahead(stream, 1)
    }

    /// As [`Caller::scope_stream`], taking up to `ahead` items that are ready in one
    /// turn as the caller: for streams of small items (a result's rows), entering the
    /// caller's scope once per item costs more than the item.
    pub fn scope_ahead<S: Stream + Unpin>(self, stream: S, ahead: usize) -> InScope<S> {
        InScope {
            caller: self,
            inner: stream,
            ready: VecDeque::new(),
            ahead: ahead.max(1),
            ended: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_superuser(&self) -> bool {
        match &self.store {
            None => true,
            Some(store) => store.read(|c| {
                let roles = roles_of(&c.users, &self.name);
                c.users
                    .iter()
                    .any(|u| u.superuser && roles.contains(u.name.as_str()))
            }),
        }
    }

    /// The caps on what this caller may do: the tightest among their roles; none for
    /// superusers and the server itself.
    pub fn limits(&self) -> RoleLimits {
        let Some(store) = &self.store else {
            return RoleLimits::default();
        };
        if self.is_superuser() {
            return RoleLimits::default();
        }
        store.read(|c| {
            let roles = roles_of(&c.users, &self.name);
            c.users
                .iter()
                .filter(|u| roles.contains(u.name.as_str()))
                .fold(RoleLimits::default(), |caps, u| caps.tightest(u.limits))
        })
    }

    /// True if the caller holds `privilege` on `schema.table`.
    pub fn may(&self, privilege: Privilege, schema: &str, table: &str) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        if self.is_superuser() {
            return true;
        }
        store.read(|c| {
            let roles = roles_of(&c.users, &self.name);
            c.grants.iter().any(|g| {
                roles.contains(g.grantee.as_str())
                    && g.privilege.covers(privilege)
                    && match &g.target {
                        GrantTarget::Table { schema: s, name } => s == schema && name == table,
                        GrantTarget::Schema { schema: s } => s == schema,
                    }
            })
        })
    }

    /// True if the caller may read `schema.table` at all (the catalog listings).
    pub fn may_see(&self, schema: &str, table: &str) -> bool {
        self.may(Privilege::Select, schema, table) || self.may(Privilege::Insert, schema, table)
    }

    /// Refuses with 42501 unless the caller holds `privilege` on `table`.
    pub fn check_table(&self, privilege: Privilege, table: &TableReference) -> Result<()> {
        let (schema, name) = schema_and_name(table);
        if self.may(privilege, &schema, &name) {
            return Ok(());
        }
        let name = if schema == DEFAULT_SCHEMA {
            name
        } else {
            format!("{schema}.{name}")
        };
        Err(Error::PermissionDenied {
            message: format!(
                "permission denied for table {name}: user \"{}\" may not {} it; a superuser can GRANT {} ON TABLE {name} TO \"{}\"",
                self.name,
                privilege.verb(),
                grant_keyword(privilege),
                self.name
            ),
        })
    }

    /// Creating or dropping objects in `schema`: superusers, or `GRANT ALL ON SCHEMA`.
    pub fn check_schema_owner(&self, schema: &str) -> Result<()> {
        let granted = self.is_superuser()
            || self.store.as_ref().is_some_and(|store| {
                store.read(|c| {
                    let roles = roles_of(&c.users, &self.name);
                    c.grants.iter().any(|g| {
                        roles.contains(g.grantee.as_str())
                            && g.privilege == Privilege::All
                            && g.target
                                == GrantTarget::Schema {
                                    schema: schema.to_string(),
                                }
                    })
                })
            });
        if granted {
            return Ok(());
        }
        Err(Error::PermissionDenied {
            message: format!(
                "permission denied for schema {schema}: creating or dropping objects needs a superuser or GRANT ALL ON SCHEMA {schema} TO \"{}\"",
                self.name
            ),
        })
    }

    /// Refuses with 42501 unless the caller is a superuser.
    pub fn require_superuser(&self, what: &str) -> Result<()> {
        if self.is_superuser() {
            return Ok(());
        }
        Err(Error::PermissionDenied {
            message: format!("permission denied: only superusers may {what}"),
        })
    }

    /// True if `schema.table` is a table or view of the catalog (not a system table).
    pub fn is_catalog_table(&self, schema: &str, table: &str) -> bool {
        self.store
            .as_ref()
            .is_some_and(|s| s.read(|c| c.find_object(schema, table).is_some()))
    }

    /// The store behind a client's user; `None` for the server itself.
    pub(crate) fn store(&self) -> Option<&Arc<CatalogStore>> {
        self.store.as_ref()
    }
}

/// A stream polled as its caller; see [`Caller::scope_stream`].
pub struct InScope<S: Stream> {
    caller: Caller,
    inner: S,
    /// Items taken ahead, in order.
    ready: VecDeque<S::Item>,
    ahead: usize,
    ended: bool,
}

// Items taken ahead are plain values, never pinned; `inner` is `Unpin` itself.
impl<S: Stream + Unpin> Unpin for InScope<S> {}

impl<S: Stream + Unpin> Stream for InScope<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        if this.ready.is_empty() && !this.ended {
            let (inner, ready) = (&mut this.inner, &mut this.ready);
            this.ended = CALLER.sync_scope(this.caller.clone(), || {
                while ready.len() < this.ahead {
                    match inner.poll_next_unpin(cx) {
                        Poll::Ready(Some(item)) => ready.push_back(item),
                        Poll::Ready(None) => return true,
                        Poll::Pending => break,
                    }
                }
                false
            });
        }
        match this.ready.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if this.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// The caller of the current task, or an error that says a front end forgot it.
pub fn current_caller() -> Result<Caller> {
    Caller::current().ok_or_else(|| Error::PermissionDenied {
        message: "permission denied: the statement has no session user".into(),
    })
}

fn grant_keyword(p: Privilege) -> &'static str {
    match p {
        Privilege::Select => "SELECT",
        Privilege::Insert => "INSERT",
        Privilege::All => "ALL",
    }
}

/// `user` and every role it is a member of, directly or through other roles.
fn roles_of<'a>(users: &'a [crate::users::UserDef], user: &'a str) -> HashSet<&'a str> {
    let mut seen = HashSet::from([user]);
    let mut todo = vec![user];
    while let Some(name) = todo.pop() {
        if let Some(u) = users.iter().find(|u| u.name == name) {
            for role in &u.member_of {
                if seen.insert(role.as_str()) {
                    todo.push(role.as_str());
                }
            }
        }
    }
    seen
}

/// `(schema, table)` of a possibly partial name; the schema defaults to `public`.
pub fn schema_and_name(table: &TableReference) -> (String, String) {
    (
        table.schema().unwrap_or(DEFAULT_SCHEMA).to_string(),
        table.table().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items 0..10, each carrying the caller it was made under, with a pause after 3.
    fn numbered() -> impl Stream<Item = (i32, Option<String>)> + Unpin {
        let (mut next, mut paused) = (0, false);
        futures::stream::poll_fn(move |cx| {
            if next == 3 && !paused {
                paused = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if next == 10 {
                return Poll::Ready(None);
            }
            next += 1;
            let who = Caller::current().map(|c| c.name().to_string());
            Poll::Ready(Some((next - 1, who)))
        })
    }

    #[test]
    fn a_stream_taken_ahead_yields_every_item_in_order_each_made_as_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(CatalogStore::open(dir.path()).unwrap());
        let expected: Vec<_> = (0..10).map(|i| (i, Some("ann".to_string()))).collect();
        for ahead in [1, 4, 256] {
            let caller = Caller::user("ann", store.clone());
            let items: Vec<_> =
                futures::executor::block_on(caller.scope_ahead(numbered(), ahead).collect());
            assert_eq!(items, expected, "{ahead} ahead");
        }
        // Outside the scope the stream sees no caller.
        let outside: Vec<_> = futures::executor::block_on(numbered().collect());
        assert!(outside.iter().all(|(_, who)| who.is_none()));
    }

    #[test]
    fn grants_through_roles_and_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(CatalogStore::open(dir.path()).unwrap());
        store.create_user("admin", "pw", true).unwrap();
        store.create_user("ann", "pw", false).unwrap();
        store.create_role("analysts").unwrap();
        store.add_member("ann", "analysts").unwrap();
        store
            .grant(GrantDef {
                grantee: "analysts".into(),
                privilege: Privilege::Select,
                target: GrantTarget::Table {
                    schema: "public".into(),
                    name: "sales".into(),
                },
            })
            .unwrap();
        store
            .grant(GrantDef {
                grantee: "ann".into(),
                privilege: Privilege::All,
                target: GrantTarget::Schema {
                    schema: "scratch".into(),
                },
            })
            .unwrap();
        let ann = Caller::user("ann", store.clone());
        assert!(ann.may(Privilege::Select, "public", "sales"));
        assert!(!ann.may(Privilege::Insert, "public", "sales"));
        assert!(!ann.may(Privilege::Select, "public", "customers"));
        assert!(ann.may(Privilege::Insert, "scratch", "anything"));
        assert!(ann.check_schema_owner("scratch").is_ok());
        assert!(ann.check_schema_owner("public").is_err());
        assert!(!ann.is_superuser());
        assert!(Caller::user("admin", store.clone()).may(Privilege::All, "x", "y"));
        let err = ann
            .check_table(Privilege::Select, &TableReference::bare("customers"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("permission denied for table customers"),
            "{err}"
        );

        store.remove_member("ann", "analysts").unwrap();
        assert!(!ann.may(Privilege::Select, "public", "sales"));
    }
}
