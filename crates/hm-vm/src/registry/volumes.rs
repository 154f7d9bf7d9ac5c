//! The registry's record of cache volumes (see [`crate::volumes`]): what
//! `hm cache ls` lists of them, and what eviction picks from, least
//! recently used first.

use rusqlite::params;
use serde::Serialize;

use super::{now, Registry, RegistryError};
use crate::volumes::VolumeKey;

/// One volume instance, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeRecord {
    pub id: String,
    pub backend: String,
    #[serde(flatten)]
    pub key: VolumeKey,
    pub instance: u32,
    /// Bytes on disk when a step last let go of it (0 where the backend
    /// cannot tell).
    pub size: u64,
    /// Unix seconds.
    pub created: u64,
    pub last_used: u64,
}

impl Registry {
    /// Records that a step of `backend` used instance `instance` of `key`
    /// (id `id`) now, and its size when known.
    pub fn volume_used(
        &self,
        id: &str,
        backend: &str,
        key: &VolumeKey,
        instance: u32,
        size: Option<u64>,
    ) -> Result<(), RegistryError> {
        let now = now() as i64;
        self.conn()
            .prepare_cached(
                "INSERT INTO volumes (id, backend, scope, image, name, instance, size, created, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, 0), ?8, ?8)
                 ON CONFLICT (id) DO UPDATE SET last_used = excluded.last_used,
                     size = COALESCE(?7, volumes.size)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id,
                    backend,
                    key.scope,
                    key.image,
                    key.name,
                    instance,
                    size.map(|s| s as i64),
                    now
                ])
            })
            .map_err(self.err())?;
        Ok(())
    }

    /// Every volume, most recently used first.
    pub fn volumes(&self) -> Result<Vec<VolumeRecord>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, backend, scope, image, name, instance, size, created, last_used
                 FROM volumes ORDER BY last_used DESC, id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |row| {
                Ok(VolumeRecord {
                    id: row.get(0)?,
                    backend: row.get(1)?,
                    key: VolumeKey {
                        scope: row.get(2)?,
                        image: row.get(3)?,
                        name: row.get(4)?,
                    },
                    instance: row.get(5)?,
                    size: row.get::<_, i64>(6)? as u64,
                    created: row.get::<_, i64>(7)? as u64,
                    last_used: row.get::<_, i64>(8)? as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Forgets volume `id`, whose storage is gone.
    pub fn forget_volume(&self, id: &str) -> Result<(), RegistryError> {
        self.conn()
            .execute("DELETE FROM volumes WHERE id = ?1", [id])
            .map_err(self.err())?;
        Ok(())
    }
}
