//! A minimal in-memory `Space` for the unit tests of this module, until
//! they run on the substrate's embedded space.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use halley_substrate::{Space, SpaceError, Subscription, Template, Tuple};
use tokio::sync::{Notify, mpsc};

#[derive(Clone, Debug, Default)]
pub struct TestSpace {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tuples: Mutex<Vec<Tuple>>,
    subscribers: Mutex<Vec<(Template, mpsc::UnboundedSender<Tuple>)>>,
    changed: Notify,
}

#[derive(Debug)]
pub struct TestSubscription(mpsc::UnboundedReceiver<Tuple>);

impl Subscription for TestSubscription {
    async fn next(&mut self) -> Option<Tuple> {
        self.0.recv().await
    }
}

impl TestSpace {
    async fn wait<T>(
        &self,
        timeout: Option<Duration>,
        mut attempt: impl FnMut(&mut Vec<Tuple>) -> Option<T>,
    ) -> Option<T> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notified = self.inner.changed.notified();
            if let Some(found) = attempt(&mut self.inner.tuples.lock().unwrap()) {
                return Some(found);
            }
            match deadline {
                None => notified.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

impl Space for TestSpace {
    type Subscription = TestSubscription;

    async fn out_all(&self, tuples: Vec<Tuple>, _ttl: Option<Duration>) -> Result<(), SpaceError> {
        for (template, tx) in self.inner.subscribers.lock().unwrap().iter() {
            for t in tuples.iter().filter(|t| template.matches(t)) {
                let _ = tx.send(t.clone());
            }
        }
        self.inner.tuples.lock().unwrap().extend(tuples);
        self.inner.changed.notify_waiters();
        Ok(())
    }

    async fn take_up_to(
        &self,
        template: Template,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let found = self
            .wait(timeout, |tuples| {
                let mut taken = Vec::new();
                let mut i = 0;
                while i < tuples.len() && taken.len() < max {
                    if template.matches(&tuples[i]) {
                        taken.push(tuples.remove(i));
                    } else {
                        i += 1;
                    }
                }
                (!taken.is_empty()).then_some(taken)
            })
            .await;
        Ok(found.unwrap_or_default())
    }

    async fn read(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> Result<Option<Tuple>, SpaceError> {
        Ok(self
            .wait(timeout, |tuples| {
                tuples.iter().find(|t| template.matches(t)).cloned()
            })
            .await)
    }

    async fn scan(
        &self,
        template: Template,
        limit: Option<usize>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let tuples = self.inner.tuples.lock().unwrap();
        let matching = tuples.iter().filter(|t| template.matches(t)).cloned();
        Ok(matching.take(limit.unwrap_or(usize::MAX)).collect())
    }

    async fn subscribe(&self, template: Template) -> Result<TestSubscription, SpaceError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.subscribers.lock().unwrap().push((template, tx));
        Ok(TestSubscription(rx))
    }
}
