//! Where a job's large data travels: the local file system (a directory
//! every worker shares: one machine, or a cluster's shared file system) or
//! S3-compatible object storage (`--store s3://bucket/prefix`), so that
//! workers need nothing shared with the submitter but the space's address
//! and its token. Small data (task command lines, arguments, outputs up to
//! a limit) travels in the space; MapReduce splits, the maps' partitions
//! and the reduce outputs go through a [`Store`], as objects named by key
//! (`split-3`, `map-3.part-1`, `part-1`) under the job's prefix.
//!
//! S3 access goes through the `object_store` crate: credentials from the
//! usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, default `us-east-1`); without a key id requests go
//! unsigned (a local SeaweedFS or MinIO without auth). `--store-endpoint`
//! names a server other than AWS (path-style requests; `http://` allowed).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// `--store` and `--store-endpoint`, as `halley mapreduce` and `halley
/// mr-task` take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// Object storage for the job's large data (splits, partitions,
    /// outputs): `s3://bucket/prefix`. Default: the local file system,
    /// which every worker must then share.
    #[arg(long)]
    pub store: Option<String>,
    /// The S3 server's URL when it is not AWS (e.g. http://127.0.0.1:8333).
    #[arg(long, requires = "store")]
    pub store_endpoint: Option<String>,
}

impl StoreArgs {
    /// The object store named, if any; bad input names `--store`.
    pub fn open(&self) -> anyhow::Result<Option<Store>> {
        match &self.store {
            None => Ok(None),
            Some(url) => S3::open(url, self.store_endpoint.as_deref())
                .map(|s3| Some(Store::S3(s3)))
                .with_context(|| format!("--store {url}")),
        }
    }
}

/// A place for a job's objects.
#[derive(Debug, Clone)]
pub enum Store {
    /// Files in a directory all workers share.
    Local(PathBuf),
    S3(S3),
}

/// A bucket and a prefix on an S3-compatible server.
#[derive(Clone)]
pub struct S3 {
    client: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("url", &self.url())
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl S3 {
    /// Opens `s3://bucket[/prefix]` at `endpoint` (default: AWS).
    pub fn open(url: &str, endpoint: Option<&str>) -> anyhow::Result<S3> {
        let Some(rest) = url.strip_prefix("s3://") else {
            bail!("expected s3://bucket/prefix");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("expected a bucket name after s3://");
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(endpoint) = endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                bail!("--store-endpoint {endpoint}: expected an http:// or https:// URL");
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            builder = builder.with_skip_signature(true);
        }
        let client = builder.build().map_err(|e| anyhow!(e))?;
        Ok(S3 {
            client: Arc::new(client),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: endpoint.map(str::to_string),
        })
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    fn key(&self, name: &str) -> Key {
        match self.prefix.as_str() {
            "" => Key::from(name),
            prefix => Key::from(format!("{prefix}/{name}")),
        }
    }
}

impl Store {
    /// The store under `name` (a job's own prefix or directory).
    pub fn child(&self, name: &str) -> Store {
        match self {
            Store::Local(dir) => Store::Local(dir.join(name)),
            Store::S3(s3) => Store::S3(S3 {
                prefix: match s3.prefix.as_str() {
                    "" => name.to_string(),
                    prefix => format!("{prefix}/{name}"),
                },
                ..s3.clone()
            }),
        }
    }

    /// What a `halley mr-task` command line says to reach this store.
    pub fn args(&self) -> Vec<String> {
        match self {
            Store::Local(dir) => vec!["--shuffle".into(), dir.display().to_string()],
            Store::S3(s3) => {
                let mut args = vec!["--store".into(), s3.url()];
                if let Some(endpoint) = &s3.endpoint {
                    args.extend(["--store-endpoint".into(), endpoint.clone()]);
                }
                args
            }
        }
    }

    /// Puts object `name`; a reader never sees half of it (a local file is
    /// written aside and renamed; an S3 put is atomic).
    pub async fn put(&self, name: &str, data: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(name);
                let aside = dir.join(format!("{name}.tmp-{}", std::process::id()));
                std::fs::write(&aside, data)
                    .and_then(|()| std::fs::rename(&aside, &path))
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            Store::S3(s3) => s3
                .client
                .put(&s3.key(name), PutPayload::from(data))
                .await
                .map(drop)
                .with_context(|| format!("cannot put {}/{name}", s3.url())),
        }
    }

    /// Object `name`'s bytes.
    pub async fn get(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(name);
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
            }
            Store::S3(s3) => {
                let got = async { s3.client.get(&s3.key(name)).await?.bytes().await }.await;
                got.map(|bytes| bytes.to_vec())
                    .with_context(|| format!("cannot get {}/{name}", s3.url()))
            }
        }
    }

    /// Removes every object of the store (its directory, or its prefix).
    pub async fn remove_all(&self) -> anyhow::Result<()> {
        match self {
            Store::Local(dir) => std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove {}", dir.display())),
            Store::S3(s3) => {
                use futures::TryStreamExt;
                let prefix = Key::from(format!("{}/", s3.prefix));
                let objects: Vec<_> = s3
                    .client
                    .list(Some(&prefix))
                    .try_collect()
                    .await
                    .with_context(|| format!("cannot list {}", s3.url()))?;
                for object in objects {
                    s3.client
                        .delete(&object.location)
                        .await
                        .with_context(|| format!("cannot delete {}", object.location))?;
                }
                Ok(())
            }
        }
    }

    /// Runs `f` on a runtime of its own (for the commands that have none).
    pub fn blocking<T>(
        f: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a runtime for the store")?
            .block_on(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_names_a_bucket_and_a_prefix() {
        let s3 = S3::open("s3://data/runs/", Some("http://127.0.0.1:8333")).unwrap();
        assert_eq!(s3.url(), "s3://data/runs");
        let job = Store::S3(s3).child("mapreduce-1");
        assert_eq!(
            job.args(),
            [
                "--store",
                "s3://data/runs/mapreduce-1",
                "--store-endpoint",
                "http://127.0.0.1:8333"
            ]
        );
        let err =
            |url: &str, endpoint: Option<&str>| S3::open(url, endpoint).unwrap_err().to_string();
        assert_eq!(err("/data", None), "expected s3://bucket/prefix");
        assert_eq!(err("s3:///x", None), "expected a bucket name after s3://");
        assert_eq!(
            err("s3://b", Some("127.0.0.1:8333")),
            "--store-endpoint 127.0.0.1:8333: expected an http:// or https:// URL"
        );
    }

    #[test]
    fn a_local_store_writes_aside_then_renames_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("halley-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::Local(dir.clone());
        Store::blocking(store.put("a", b"hello".to_vec())).unwrap();
        assert_eq!(Store::blocking(store.get("a")).unwrap(), b"hello");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a"]);
        Store::blocking(store.remove_all()).unwrap();
        assert!(!dir.exists());
    }
}
