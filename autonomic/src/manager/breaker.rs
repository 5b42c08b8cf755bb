//! Classes given up on: a class whose machines end, one after another,
//! before their worker is ever heard from (the provider refused, a start
//! script failed or printed no id, a machine did not boot in time) is
//! broken — a quota, an image, a script — and each new attempt may still
//! bill (a cloud instance that boots and never joins). After
//! [`BOOT_FAILURES`] in a row no more of it is started; one that runs ends
//! the count.

/// Machines of a class that may end in a row before their worker is heard
/// from, before the class is given up on.
pub const BOOT_FAILURES: u32 = 3;

/// Failures in a row, per class.
#[derive(Debug, Clone)]
pub struct Breaker {
    in_a_row: Vec<u32>,
}

impl Breaker {
    pub fn new(classes: usize) -> Self {
        Breaker {
            in_a_row: vec![0; classes],
        }
    }

    /// A machine of `class` ran: the count starts again.
    pub fn ran(&mut self, class: usize) {
        self.in_a_row[class] = 0;
    }

    /// A machine of `class` ended before it ran; true when that is the
    /// [`BOOT_FAILURES`]th in a row (the class is given up on now, once).
    pub fn failed(&mut self, class: usize) -> bool {
        self.in_a_row[class] += 1;
        self.in_a_row[class] == BOOT_FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_is_given_up_on_at_its_third_failure_in_a_row_once() {
        let mut b = Breaker::new(2);
        assert!(!b.failed(1));
        assert!(!b.failed(1));
        b.ran(1);
        assert!(!b.failed(1));
        assert!(!b.failed(1));
        assert!(!b.failed(0), "classes count apart");
        assert!(b.failed(1));
        assert!(!b.failed(1), "said once");
    }
}
