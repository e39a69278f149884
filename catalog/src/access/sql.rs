//! `CREATE USER/ROLE`, `ALTER USER/ROLE`, `DROP USER/ROLE`, `GRANT` and `REVOKE`.
//!
//! sqlparser reads Postgres' `CREATE ROLE` grammar, but its `CREATE USER` is
//! Snowflake's; since Postgres defines `CREATE USER` as `CREATE ROLE ... LOGIN`,
//! [`normalize_user_statements`] rewrites the one word before parsing.

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Action, AlterRoleOperation, Expr, GrantObjects, Grantee, GranteeName, ObjectName, ObjectType,
    Password, Privileges, ResetConfig, RoleOption, SetConfigValue, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::{Caller, GrantDef, GrantTarget, Privilege};
use crate::catalog::{CatalogOutcome, DEFAULT_SCHEMA};
use crate::error::{Error, Result};
use crate::store::CatalogStore;
use crate::users::RoleLimits;

/// Rewrites `CREATE USER` to `CREATE ROLE ... LOGIN`, `ALTER/DROP USER` to
/// `ALTER/DROP ROLE`, and `GRANT/REVOKE role TO/FROM user` to sqlparser's
/// `GRANT/REVOKE ROLE role ...`, at the start of each statement. The rest of the text is kept
/// byte for byte.
pub fn normalize_user_statements(sql: &str) -> std::borrow::Cow<'_, str> {
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("USER") && !upper.contains("GRANT") && !upper.contains("REVOKE") {
        return sql.into();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return sql.into();
    };
    let offset = |loc: Location| byte_offset(sql, loc.line, loc.column);
    // (byte range to replace, replacement)
    let mut edits: Vec<(std::ops::Range<usize>, &str)> = Vec::new();
    let mut words: Vec<Keyword> = Vec::new();
    let mut creating_user = false;
    let mut has_login = false;
    for t in &tokens {
        if matches!(t.token, Token::SemiColon | Token::EOF) {
            if creating_user && !has_login {
                let at = offset(t.span.start);
                edits.push((at..at, " LOGIN"));
            }
            words.clear();
            (creating_user, has_login) = (false, false);
            continue;
        }
        match &t.token {
            Token::Whitespace(_) => {}
            Token::Word(w) => {
                has_login |= matches!(w.keyword, Keyword::LOGIN | Keyword::NOLOGIN);
                // Postgres' `GRANT role TO user` is sqlparser's `GRANT ROLE role TO user`.
                if words.len() == 1
                    && matches!(words[0], Keyword::GRANT | Keyword::REVOKE)
                    && !is_privilege(w.keyword)
                {
                    let at = offset(t.span.start);
                    edits.push((at..at, "ROLE "));
                }
                if words.len() == 1
                    && w.keyword == Keyword::USER
                    && matches!(words[0], Keyword::CREATE | Keyword::ALTER | Keyword::DROP)
                {
                    creating_user = words[0] == Keyword::CREATE;
                    edits.push((offset(t.span.start)..offset(t.span.end), "ROLE"));
                }
                words.push(w.keyword);
            }
            _ => words.push(Keyword::NoKeyword),
        }
    }
    if creating_user && !has_login {
        edits.push((sql.len()..sql.len(), " LOGIN"));
    }
    if edits.is_empty() {
        return sql.into();
    }
    let mut out = sql.to_string();
    for (range, text) in edits.into_iter().rev() {
        out.replace_range(range, text);
    }
    out.into()
}

fn is_privilege(k: Keyword) -> bool {
    matches!(
        k,
        Keyword::SELECT
            | Keyword::INSERT
            | Keyword::UPDATE
            | Keyword::DELETE
            | Keyword::ALL
            | Keyword::USAGE
            | Keyword::CREATE
            | Keyword::TRUNCATE
            | Keyword::REFERENCES
            | Keyword::TRIGGER
            | Keyword::EXECUTE
            | Keyword::CONNECT
            | Keyword::TEMPORARY
            | Keyword::TEMP
            | Keyword::ROLE
    )
}

/// The byte offset of a 1-based line and character column.
fn byte_offset(text: &str, line: u64, column: u64) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(rest.len(), |(i, _)| i)
}

/// True for the statements that manage users, roles and grants.
pub fn is_access_statement(stmt: &DFStatement) -> bool {
    let DFStatement::Statement(s) = stmt else {
        return false;
    };
    matches!(
        s.as_ref(),
        Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::Grant(_)
            | Statement::Revoke(_)
    ) || matches!(
        s.as_ref(),
        Statement::Drop {
            object_type: ObjectType::Role | ObjectType::User,
            ..
        }
    )
}

/// Runs one statement for which [`is_access_statement`] is true; superusers only.
pub fn run_access_statement(
    store: &CatalogStore,
    caller: &Caller,
    stmt: DFStatement,
) -> Result<CatalogOutcome> {
    caller.require_superuser("manage users, roles and grants")?;
    let DFStatement::Statement(s) = stmt else {
        return Err(unsupported("this statement"));
    };
    let done = |tag| Ok(CatalogOutcome { tag, rows: None });
    match *s {
        Statement::CreateRole(role) => {
            for name in &role.names {
                let name = ident_name(name);
                if role.if_not_exists && store.user(&name).is_some() {
                    continue;
                }
                let password = match &role.password {
                    Some(p) => password_text(p)?,
                    None => None,
                };
                store.create_role_with(
                    &name,
                    password.as_deref(),
                    role.superuser.unwrap_or(false),
                    role.login.unwrap_or(false),
                )?;
                for parent in &role.in_role {
                    store.add_member(&name, &parent.value)?;
                }
            }
            done("CREATE ROLE")
        }
        Statement::AlterRole { name, operation } => {
            let name = name.value;
            match operation {
                AlterRoleOperation::WithOptions { options } => {
                    for option in options {
                        match option {
                            RoleOption::Password(p) => match password_text(&p)? {
                                Some(text) => store.set_password(&name, &text)?,
                                None => store.set_login(&name, false)?,
                            },
                            RoleOption::SuperUser(on) => store.set_superuser(&name, on)?,
                            RoleOption::Login(on) => store.set_login(&name, on)?,
                            other => return Err(unsupported(&format!("ALTER ROLE ... {other}"))),
                        }
                    }
                }
                AlterRoleOperation::Set {
                    config_name,
                    config_value,
                    in_database: None,
                } => {
                    let limit = config_name.to_string().to_ascii_lowercase();
                    let value = match config_value {
                        SetConfigValue::Default => None,
                        SetConfigValue::Value(value) => Some(limit_value(&limit, &value)?),
                        SetConfigValue::FromCurrent => {
                            return Err(unsupported("ALTER ROLE ... SET ... FROM CURRENT"))
                        }
                    };
                    store.set_limit(&name, &limit, value)?;
                }
                AlterRoleOperation::Reset {
                    config_name,
                    in_database: None,
                } => match config_name {
                    ResetConfig::ALL => {
                        for limit in RoleLimits::NAMES {
                            store.set_limit(&name, limit, None)?;
                        }
                    }
                    ResetConfig::ConfigName(limit) => {
                        let limit = limit.to_string().to_ascii_lowercase();
                        store.set_limit(&name, &limit, None)?;
                    }
                },
                other => return Err(unsupported(&format!("ALTER ROLE {other}"))),
            }
            done("ALTER ROLE")
        }
        Statement::Drop {
            names, if_exists, ..
        } => {
            for name in names {
                let name = ident_name(&name);
                if name == caller.name() {
                    return Err(Error::PermissionDenied {
                        message: format!("current user \"{name}\" cannot be dropped"),
                    });
                }
                match store.drop_user(&name) {
                    Err(Error::UserNotFound { .. }) if if_exists => {}
                    other => other?,
                }
            }
            done("DROP ROLE")
        }
        Statement::Grant(grant) => {
            let grantees = grantee_names(&grant.grantees)?;
            match grant.objects {
                None => {
                    for role in roles_of_actions(&grant.privileges)? {
                        for member in &grantees {
                            store.add_member(member, &role)?;
                        }
                    }
                    done("GRANT ROLE")
                }
                Some(objects) => {
                    for def in grant_defs(store, &grant.privileges, &objects, &grantees)? {
                        store.grant(def)?;
                    }
                    done("GRANT")
                }
            }
        }
        Statement::Revoke(revoke) => {
            let grantees = grantee_names(&revoke.grantees)?;
            match revoke.objects {
                None => {
                    for role in roles_of_actions(&revoke.privileges)? {
                        for member in &grantees {
                            store.remove_member(member, &role)?;
                        }
                    }
                    done("REVOKE ROLE")
                }
                Some(objects) => {
                    for def in grant_defs(store, &revoke.privileges, &objects, &grantees)? {
                        store.revoke(&def)?;
                    }
                    done("REVOKE")
                }
            }
        }
        other => Err(unsupported(&other.to_string())),
    }
}

fn unsupported(what: &str) -> Error {
    Error::NotSupported {
        what: what.to_string(),
    }
}

/// A role or user name as Postgres folds it: unquoted names lower-cased.
/// The value of `ALTER ROLE ... SET limit = value`: a whole number of rows or bytes.
fn limit_value(limit: &str, value: &Expr) -> Result<u64> {
    let text = value.to_string();
    text.trim_matches('\'')
        .parse::<u64>()
        .map_err(|_| Error::NotSupported {
            what: format!("{limit} = {text}: give a whole number, like {limit} = 1000"),
        })
}

fn ident_name(name: &ObjectName) -> String {
    let text = name.to_string();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

fn password_text(p: &Password) -> Result<Option<String>> {
    match p {
        Password::NullPassword => Ok(None),
        Password::Password(Expr::Value(v)) => match &v.value {
            Value::SingleQuotedString(s) => Ok(Some(s.clone())),
            _ => Err(unsupported("a PASSWORD that is not a string literal")),
        },
        Password::Password(_) => Err(unsupported("a PASSWORD that is not a string literal")),
    }
}

fn grantee_names(grantees: &[Grantee]) -> Result<Vec<String>> {
    grantees
        .iter()
        .map(|g| match &g.name {
            Some(GranteeName::ObjectName(name)) => Ok(ident_name(name)),
            _ => Err(unsupported(&format!("grantee {g}"))),
        })
        .collect()
}

/// The roles of `GRANT ROLE r TO u` / `GRANT r TO u`.
fn roles_of_actions(privileges: &Privileges) -> Result<Vec<String>> {
    let Privileges::Actions(actions) = privileges else {
        return Err(unsupported("GRANT ALL without ON"));
    };
    actions
        .iter()
        .map(|a| match a {
            Action::Role { role } => Ok(ident_name(role)),
            other => Err(unsupported(&format!("GRANT {other} without ON"))),
        })
        .collect()
}

fn privileges_of(privileges: &Privileges) -> Result<Vec<Privilege>> {
    match privileges {
        Privileges::All { .. } => Ok(vec![Privilege::All]),
        Privileges::Actions(actions) => actions
            .iter()
            .map(|a| match a {
                Action::Select { columns: None } => Ok(Privilege::Select),
                Action::Insert { columns: None } => Ok(Privilege::Insert),
                other => Err(unsupported(&format!(
                    "privilege {other} (InsightFlow grants SELECT, INSERT or ALL)"
                ))),
            })
            .collect(),
    }
}

fn grant_defs(
    store: &CatalogStore,
    privileges: &Privileges,
    objects: &GrantObjects,
    grantees: &[String],
) -> Result<Vec<GrantDef>> {
    let targets: Vec<GrantTarget> = match objects {
        GrantObjects::Tables(names) => names
            .iter()
            .map(|n| {
                let table = datafusion::common::TableReference::from(n.to_string());
                let (schema, name) = super::schema_and_name(&table);
                if store.read(|c| c.find_object(&schema, &name).is_none()) {
                    return Err(Error::TableNotFound {
                        name: n.to_string(),
                    });
                }
                Ok(GrantTarget::Table { schema, name })
            })
            .collect::<Result<_>>()?,
        GrantObjects::Schemas(names) => names
            .iter()
            .map(|n| GrantTarget::Schema {
                schema: ident_name(n),
            })
            .collect(),
        // Postgres: the tables that exist now.
        GrantObjects::AllTablesInSchema { schemas } => schemas
            .iter()
            .flat_map(|s| {
                let schema = ident_name(s);
                store.read(|c| {
                    c.objects
                        .iter()
                        .filter(|o| o.schema() == schema)
                        .map(|o| GrantTarget::Table {
                            schema: schema.clone(),
                            name: o.name().to_string(),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect(),
        other => return Err(unsupported(&format!("GRANT ... ON {other}"))),
    };
    let _ = DEFAULT_SCHEMA;
    let mut defs = Vec::new();
    for privilege in privileges_of(privileges)? {
        for target in &targets {
            for grantee in grantees {
                defs.push(GrantDef {
                    grantee: grantee.clone(),
                    privilege,
                    target: target.clone(),
                });
            }
        }
    }
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_user_becomes_create_role_with_login() {
        assert_eq!(
            normalize_user_statements("CREATE USER ann WITH PASSWORD 'it''s'"),
            "CREATE ROLE ann WITH PASSWORD 'it''s' LOGIN"
        );
        assert_eq!(
            normalize_user_statements("create user bob nologin;\n drop user bob"),
            "create ROLE bob nologin;\n drop ROLE bob"
        );
        assert_eq!(normalize_user_statements("SELECT user"), "SELECT user");
        assert_eq!(
            normalize_user_statements("SELECT 'é';\nCREATE USER x PASSWORD 'p'"),
            "SELECT 'é';\nCREATE ROLE x PASSWORD 'p' LOGIN"
        );
        assert_eq!(
            normalize_user_statements("ALTER USER ann WITH PASSWORD 'x'"),
            "ALTER ROLE ann WITH PASSWORD 'x'"
        );
        assert_eq!(
            normalize_user_statements(
                "GRANT analysts TO ann; REVOKE analysts FROM ann; GRANT SELECT ON t TO ann"
            ),
            "GRANT ROLE analysts TO ann; REVOKE ROLE analysts FROM ann; GRANT SELECT ON t TO ann"
        );
    }
}
