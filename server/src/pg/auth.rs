//! Who may connect over pgwire: SCRAM-SHA-256 against the catalog's users, and the
//! start-up parameters drivers check before they send a query.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use insightflow_catalog::CatalogStore;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, ServerParameterProvider,
};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};

use crate::pg_compat::SERVER_VERSION;

/// Looks users up in the catalog; only their SCRAM verifiers are stored.
#[derive(Debug)]
pub(crate) struct CatalogAuthSource {
    store: Arc<CatalogStore>,
}

impl CatalogAuthSource {
    pub(crate) fn new(store: Arc<CatalogStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl AuthSource for CatalogAuthSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().unwrap_or_default();
        let user = self
            .store
            .user(name)
            .filter(|u| u.login)
            .ok_or_else(|| PgWireError::InvalidPassword(name.to_string()))?;
        let (salt, salted) = user
            .verifier
            .decode()
            .ok_or_else(|| PgWireError::InvalidPassword(name.to_string()))?;
        Ok(Password::new(Some(salt), salted))
    }
}

/// Postgres 16 start-up parameters, with `is_superuser` from the catalog.
pub(crate) struct PgParameters {
    defaults: DefaultServerParameterProvider,
    store: Arc<CatalogStore>,
}

impl PgParameters {
    pub(crate) fn new(store: Arc<CatalogStore>) -> Self {
        let mut defaults = DefaultServerParameterProvider::default();
        defaults.server_version = SERVER_VERSION.to_string();
        defaults.date_style = "ISO, MDY".to_string();
        defaults.time_zone = "UTC".to_string();
        Self { defaults, store }
    }
}

impl ServerParameterProvider for PgParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut params = self.defaults.server_parameters(client)?;
        let superuser = client
            .metadata()
            .get(pgwire::api::METADATA_USER)
            .and_then(|u| self.store.user(u))
            .is_some_and(|u| u.superuser);
        params.insert(
            "is_superuser".to_string(),
            if superuser { "on" } else { "off" }.to_string(),
        );
        Some(params)
    }
}
