//! What an isolated worker of one job may do at a gateway: the [`Scope`] of
//! the job's capability (see `halley_substrate::node::gate`).
//!
//! Exactly what [`crate::worker::Worker`] does for one job, and no more:
//! take the job's tasks, put and take back its claims (the leases, renewed
//! by putting them again), put its results and its heartbeat, and watch for
//! its stop tuples and its abort notice. It cannot read, scan or subscribe to anything, write a
//! task (so it cannot make other workers run a command), or touch another
//! job's tasks, claims or results.
//!
//! Not narrowed (the tuples carry no job): a heartbeat names any worker id,
//! and a `("stop", <worker id>)` may be taken for any id, so a holder can
//! make the manager think a worker is alive or keep a worker of its id
//! from seeing its stop tuple; the manager still stops machines through
//! their provider.

use halley_substrate::node::gate::Scope;
use halley_substrate::{Field, Kind, Template};

use crate::chunks;
use crate::lease::Claim;
use crate::results;
use crate::task::{Heartbeat, STOP, abort_template, stop_template};

/// The scope of job `job`'s isolated workers.
pub fn worker_scope(job: &str) -> Scope {
    let any_stop = Template::new(vec![Field::Actual(STOP.into()), Field::Typed(Kind::Str)]);
    Scope {
        take: vec![chunks::template(Some(job)), Claim::template(job), any_stop],
        read: vec![stop_template(job), abort_template(Some(job))],
        write: vec![
            Claim::template(job),
            results::template(Some(job)),
            Heartbeat::template(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use halley_substrate::node::gate::Grants;
    use halley_substrate::wire::Request;
    use halley_substrate::{EmbeddedSpace, Node, RemoteSpace, Space, SpaceError};

    use super::*;
    use crate::master::Master;
    use crate::worker::Worker;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_holding_its_jobs_capability_runs_its_job_only_through_a_gateway() {
        let space = EmbeddedSpace::new();
        let grants = Arc::new(Grants::default());
        let listen = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let gateway = Node::start_gateway(listen, space.clone(), grants.clone())
            .await
            .unwrap();
        let capability = grants.issue("sq", worker_scope("sq"));
        let remote = RemoteSpace::connect(gateway.address().clone(), Duration::from_secs(10))
            .await
            .unwrap();
        remote.present(&capability.to_string()).await.unwrap();

        // Another job's tasks wait in the same space.
        let mut other = Master::new(space.clone(), "other");
        other.submit((0..5u8).map(|i| vec![i])).await.unwrap();

        let worker = Worker::new(remote.clone(), "sq").lease(Duration::from_millis(600));
        let stopper = worker.stopper();
        let run = tokio::spawn(worker.run(|p| p.iter().map(|b| b * 2).collect()));
        let mut master = Master::new(space.clone(), "sq");
        master.submit((0..20u8).map(|i| vec![i])).await.unwrap();
        let done = master.collect().await.unwrap();
        assert_eq!(done.len(), 20);
        let mut doubled: Vec<u8> = done.iter().map(|d| d.result.payload[0]).collect();
        doubled.sort_unstable();
        assert_eq!(doubled, (0..20u8).map(|i| i * 2).collect::<Vec<_>>());
        stopper.stop();
        run.await.unwrap().unwrap();
        let waiting = space
            .scan(chunks::template(Some("other")), None)
            .await
            .unwrap();
        assert_eq!(waiting.len(), 5, "the other job's tasks are untouched");
        let stolen = remote
            .take(chunks::template(Some("other")), Some(Duration::ZERO))
            .await
            .unwrap_err();
        assert!(
            matches!(stolen, SpaceError::Refused(ref m) if m.contains("taking")),
            "{stolen}"
        );

        // The same stream may not step outside the job.
        let refused = remote.scan(chunks::template(None), None).await.unwrap_err();
        assert!(matches!(refused, SpaceError::Refused(ref m) if m.contains("scanning")));
        grants.revoke("sq");
        let cut = remote
            .take(chunks::template(Some("sq")), Some(Duration::ZERO))
            .await
            .unwrap_err();
        assert!(
            matches!(cut, SpaceError::Refused(ref m) if m.contains("revoked")),
            "{cut}"
        );
        gateway.stop().await;
    }

    #[test]
    fn other_jobs_and_other_shapes_are_outside_the_scope() {
        let scope = worker_scope("A");
        let take = |template: Template| Request::Take {
            template,
            max: 1,
            timeout: None,
        };
        assert!(scope.allows(&take(chunks::template(Some("A")))).is_ok());
        assert!(scope.allows(&take(chunks::template(Some("B")))).is_err());
        assert!(scope.allows(&take(chunks::template(None))).is_err());
        assert!(scope.allows(&take(results::template(Some("A")))).is_err());
        let out = Request::Out {
            tuples: chunks::pack("A", [(1, 1, &b"rm -rf ~"[..])], 1),
            ttl: None,
        };
        assert!(scope.allows(&out).unwrap_err().contains("writing"));
    }
}
