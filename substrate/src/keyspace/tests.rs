//! The keyspace's promises: completeness of template covers, order, and
//! bounded, precise covers for the common templates.

use std::ops::RangeInclusive;

use proptest::prelude::*;

use super::*;
use crate::template::{Field, Range};
use crate::tuple;
use crate::tuple::Kind;

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (-5i64..5).prop_map(Value::Int),
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
        any::<f64>().prop_map(Value::Float),
        "[ab]{0,12}".prop_map(Value::Str),
        any::<String>().prop_map(Value::Str),
        any::<bool>().prop_map(Value::Bool),
        prop::collection::vec(any::<u8>(), 0..10).prop_map(Value::Bytes),
    ]
}

/// Values of each rangeable kind, to widen a range around a tuple's value.
type Sides = (i64, f64, String);

fn arb_sides() -> impl Strategy<Value = (Sides, Sides)> {
    let side = (any::<i64>(), any::<f64>(), "[ab]{0,12}");
    (side, side)
}

/// A field that matches `v`, loosened as `how` says.
fn loosen(v: &Value, how: u8, (below, above): &(Sides, Sides), cut: usize) -> Field {
    let same_kind = |side: &Sides| match v {
        Value::Int(_) => Value::Int(side.0),
        Value::Float(_) => Value::Float(side.1),
        _ => Value::Str(side.2.clone()),
    };
    match (how, v) {
        (1, _) => Field::Any,
        (2, _) => Field::Typed(v.kind()),
        (3, Value::Int(_) | Value::Float(_) | Value::Str(_)) => {
            let lo = same_kind(below).min(v.clone());
            let hi = same_kind(above).max(v.clone());
            let inclusive = hi == *v || cut.is_multiple_of(2);
            Field::Range(Range::new(lo, hi, inclusive).unwrap())
        }
        (4, Value::Str(s)) => {
            let end = s.char_indices().nth(cut).map_or(s.len(), |(i, _)| i);
            Field::Prefix(s[..end].to_owned())
        }
        _ => Field::Actual(v.clone()),
    }
}

fn contains(ranges: &[RangeInclusive<u64>], index: u64) -> bool {
    ranges.iter().any(|r| r.contains(&index))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Completeness: the ranges of a template hold the index of every tuple
    /// it matches, for any D and any cap.
    #[test]
    fn covers_hold_every_matching_tuple(
        fields in prop::collection::vec(
            (arb_value(), 0u8..6, arb_sides(), 0usize..14), 0..5),
        dims in prop::sample::select(vec![1usize, 2, 3, 4, 8]),
        max_ranges in 0usize..20,
    ) {
        let keyspace = Keyspace::new(dims).unwrap();
        let tuple = Tuple::new(fields.iter().map(|f| f.0.clone()).collect());
        let template = Template::new(
            fields.iter().map(|(v, how, sides, cut)| loosen(v, *how, sides, *cut)).collect(),
        );
        prop_assert!(template.matches(&tuple));
        let ranges = keyspace.ranges_for(&template, max_ranges);
        prop_assert!(ranges.len() <= max_ranges.max(1));
        prop_assert!(ranges.windows(2).all(|w| w[0].end() < w[1].start()), "{:?}", ranges);
        let index = keyspace.index_of(&tuple);
        prop_assert!(contains(&ranges, index), "{} not in {:?} for {:?}", index, ranges, template);
    }

    /// With one keyword, the index is the coordinate: tuples are laid on the
    /// ring in the order of their first field.
    #[test]
    fn one_dimension_preserves_order(a in arb_value(), b in arb_value()) {
        let keyspace = Keyspace::new(1).unwrap();
        let (ia, ib) = (keyspace.index_of(&Tuple::new(vec![a.clone()])), keyspace.index_of(&Tuple::new(vec![b.clone()])));
        prop_assert!(a > b || ia <= ib);
    }

    /// An index reused from the tuple before is the one computed afresh,
    /// whatever the two tuples and the number of keywords.
    #[test]
    fn an_index_next_to_another_is_its_own(
        dims in 1_usize..=3,
        before in prop::collection::vec(prop_oneof![arb_value(), Just(Value::Int(0))], 0..5),
        after in prop::collection::vec(prop_oneof![arb_value(), Just(Value::Int(0))], 0..5),
    ) {
        let keyspace = Keyspace::new(dims).unwrap();
        let prev = (&before[..], keyspace.index_of_fields(&before));
        prop_assert_eq!(
            keyspace.index_next_to(&after, Some(prev)),
            keyspace.index_of_fields(&after)
        );
        prop_assert_eq!(keyspace.index_next_to(&after, None), keyspace.index_of_fields(&after));
        let mut same_keywords = before.clone();
        same_keywords.push(Value::Bool(true));
        prop_assert_eq!(
            keyspace.index_next_to(&same_keywords, Some(prev)),
            keyspace.index_of_fields(&same_keywords)
        );
    }
}

#[test]
fn dimensions_are_checked() {
    assert_eq!(Keyspace::new(0), Err(KeyspaceError::Dims(0)));
    assert_eq!(Keyspace::new(9), Err(KeyspaceError::Dims(9)));
    assert_eq!(Keyspace::default().dims(), DEFAULT_DIMS);
    assert_eq!(Keyspace::new(3).unwrap().bits_per_dim(), 21);
}

#[test]
fn exact_keywords_give_one_point() {
    for dims in 1..=MAX_DIMS {
        let keyspace = Keyspace::new(dims).unwrap();
        let t = tuple!("task", 7_i64, 2.5, "x", true, vec![1u8], -3_i64, "y", 9_i64);
        let exact = Template::exact(&t);
        let i = keyspace.index_of(&t);
        assert_eq!(keyspace.ranges_for(&exact, 8), vec![i..=i], "D={dims}");
        // Wildcards past the keywords do not widen the cover.
        let mut fields = exact.fields().to_vec();
        fields[dims] = Field::Any;
        assert_eq!(keyspace.ranges_for(&Template::new(fields), 8), vec![i..=i]);
    }
}

#[test]
fn short_tuples_pad_with_the_origin() {
    let keyspace = Keyspace::default();
    assert_eq!(keyspace.index_of(&tuple!()), 0);
    assert_eq!(
        keyspace.index_of(&tuple!("a")),
        keyspace.index_of(&tuple!("a", i64::MIN))
    );
    assert_ne!(
        keyspace.index_of(&tuple!("a")),
        keyspace.index_of(&tuple!("a", 0_i64))
    );
}

#[test]
fn indexes_spread_over_the_whole_ring() {
    // D = 3 leaves one unused bit; it is the lowest, not the highest.
    let keyspace = Keyspace::new(3).unwrap();
    let high = keyspace.index_of(&tuple!(vec![0xffu8; 8], vec![0xffu8; 8], vec![0u8]));
    assert!(high >= 1 << 63, "{high:#x}");
    assert_eq!(high & 1, 0);
}

#[test]
fn empty_templates_cover_nothing() {
    let keyspace = Keyspace::default();
    let empty = Range::new(Value::Int(3), Value::Int(3), false).unwrap();
    let template = Template::new(vec![Field::Any, Field::Range(empty)]);
    assert_eq!(
        keyspace.ranges_for(&template, 8),
        Vec::<RangeInclusive<u64>>::new()
    );
}

/// The share of the ring the ranges cover.
fn share(ranges: &[RangeInclusive<u64>]) -> f64 {
    let width: u128 = ranges
        .iter()
        .map(|r| u128::from(r.end() - r.start()) + 1)
        .sum();
    width as f64 / 2f64.powi(64)
}

#[test]
fn covers_stay_small_as_wildcards_grow() {
    let keyspace = Keyspace::default();
    let task = || Field::Actual("task".into());
    let cases = [
        (vec![task(), Field::Actual(Value::Int(7))], 1, 1e-18),
        (vec![task(), Field::Typed(Kind::Int)], 64, 0.001),
        (vec![task(), Field::Any], 64, 0.005),
        (vec![Field::Prefix("img-".into()), Field::Any], 64, 0.005),
        // Five kinds of eight slices on both axes: 25/64 of the ring.
        (vec![Field::Any, Field::Any], 4, 25.0 / 64.0),
    ];
    for (fields, bound, max_share) in cases {
        let template = Template::new(fields);
        let uncapped = keyspace.ranges_for(&template, usize::MAX);
        assert!(
            uncapped.len() <= cover::MAX_CELLS,
            "{template}: {}",
            uncapped.len()
        );
        let capped = keyspace.ranges_for(&template, 64);
        assert!(capped.len() <= bound, "{template}: {} ranges", capped.len());
        assert!(
            share(&capped) <= max_share,
            "{template}: {}",
            share(&capped)
        );
        assert!(share(&uncapped) <= share(&capped));
    }
}
