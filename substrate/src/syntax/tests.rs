//! Round-trip properties and the exact errors of the text syntax.

use proptest::prelude::*;

use super::{NAN_PAYLOAD_MASK, ParseError, parse_template, parse_tuple};
use crate::template::{Field, Range, Template};
use crate::tuple::{Kind, Tuple, Value};

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        (any::<bool>(), 1..=NAN_PAYLOAD_MASK).prop_map(|(neg, payload)| {
            let sign = if neg { 1 << 63 } else { 0 };
            f64::from_bits(f64::INFINITY.to_bits() | payload | sign)
        }),
        prop::sample::select(vec![
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            1e16,
            1e-7,
        ]),
    ]
}

fn arb_kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(vec![
        Kind::Int,
        Kind::Float,
        Kind::Str,
        Kind::Bool,
        Kind::Bytes,
    ])
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        arb_float().prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
        "[a-z\"\\\\\n\t\u{0}-\u{1f}\u{7f}-\u{9f} ]{0,8}".prop_map(Value::Str),
        any::<bool>().prop_map(Value::Bool),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
    ]
}

fn arb_range() -> impl Strategy<Value = Range> {
    let bounds = prop_oneof![
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| (Value::Int(a), Value::Int(b))),
        (arb_float(), arb_float()).prop_map(|(a, b)| (Value::Float(a), Value::Float(b))),
        (any::<String>(), any::<String>()).prop_map(|(a, b)| (Value::Str(a), Value::Str(b))),
    ];
    (bounds, any::<bool>()).prop_map(|((lo, hi), inclusive)| {
        Range::new(lo, hi, inclusive).expect("bounds of one kind")
    })
}

fn arb_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        arb_value().prop_map(Field::Actual),
        Just(Field::Any),
        arb_kind().prop_map(Field::Typed),
        arb_range().prop_map(Field::Range),
        any::<String>().prop_map(Field::Prefix),
    ]
}

proptest! {
    #[test]
    fn tuples_round_trip(fields in prop::collection::vec(arb_value(), 0..6)) {
        let tuple = Tuple::new(fields);
        let text = tuple.to_string();
        prop_assert_eq!(parse_tuple(&text), Ok(tuple.clone()), "text: {}", text);
        prop_assert_eq!(text.parse::<Template>(), Ok(Template::exact(&tuple)));
    }

    #[test]
    fn templates_round_trip(fields in prop::collection::vec(arb_field(), 0..6)) {
        let template = Template::new(fields);
        let text = template.to_string();
        prop_assert_eq!(parse_template(&text), Ok(template), "text: {}", text);
    }

    #[test]
    fn printed_floats_read_as_floats(v in arb_float()) {
        let text = Value::Float(v).to_string();
        prop_assert!(
            text.contains(['.', 'e', 'n']),
            "{} has no '.', exponent, inf or nan", text
        );
    }
}

fn err(column: usize, expected: &str, found: &str) -> ParseError {
    ParseError {
        column,
        expected: expected.to_owned(),
        found: found.to_owned(),
    }
}

#[test]
fn contract_examples_print_and_parse() {
    let text = r#"("task", 42, -3.5, true, b"00ff", "a \"quoted\" string")"#;
    let tuple = parse_tuple(text).unwrap();
    assert_eq!(
        tuple,
        crate::tuple!(
            "task",
            42_i64,
            -3.5,
            true,
            vec![0x00_u8, 0xff],
            "a \"quoted\" string"
        )
    );
    assert_eq!(tuple.to_string(), text);

    let text = r#"("task", ?int, *, 10..20, 1.5..=2.5, "img-"*, ?bytes)"#;
    let template = parse_template(text).unwrap();
    assert_eq!(
        template.fields()[3],
        Field::Range(Range::new(Value::Int(10), Value::Int(20), false).unwrap())
    );
    assert_eq!(template.fields()[5], Field::Prefix("img-".into()));
    assert_eq!(template.to_string(), text);
}

#[test]
fn special_values_print_as_documented() {
    let t = crate::tuple!(
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        1.0,
        1e-7,
        "\u{1}\n\t\\"
    );
    assert_eq!(
        t.to_string(),
        r#"(inf, -inf, nan, -nan, 1.0, 1e-7, "\u{1}\n\t\\")"#
    );
    let odd_nan = f64::from_bits(f64::INFINITY.to_bits() | 1);
    assert_eq!(Value::Float(odd_nan).to_string(), "nan(0x1)");
    assert_eq!(Tuple::new(vec![]).to_string(), "()");
}

#[test]
fn whitespace_is_tolerated() {
    let t = parse_template(" (\t\"a\" * ,  1 ..= 2 , ?str\n) ").unwrap();
    assert_eq!(t.to_string(), r#"("a"*, 1..=2, ?str)"#);
    assert_eq!(parse_tuple("( )"), Ok(Tuple::new(vec![])));
    assert_eq!(parse_tuple("(B\"\")").unwrap_err().column, 2);
    assert_eq!(
        parse_tuple(r#"(b"AbCd")"#).unwrap().to_string(),
        r#"(b"abcd")"#
    );
}

#[test]
fn integer_edges() {
    assert_eq!(
        parse_tuple("(-9223372036854775808, 9223372036854775807)"),
        Ok(crate::tuple!(i64::MIN, i64::MAX))
    );
    assert_eq!(
        parse_tuple("(1, 9223372036854775808)"),
        Err(err(
            5,
            "an integer from -9223372036854775808 to 9223372036854775807",
            "'9223372036854775808'"
        ))
    );
}

#[test]
fn structural_errors_name_the_column() {
    assert_eq!(
        parse_tuple(r#"("task", 42, @)"#),
        Err(err(14, "a value", "'@'"))
    );
    assert_eq!(parse_tuple("(@"), Err(err(2, "a value or ')'", "'@'")));
    assert_eq!(parse_template("(@"), Err(err(2, "a field or ')'", "'@'")));
    assert_eq!(parse_tuple("  1)"), Err(err(3, "'('", "'1'")));
    assert_eq!(parse_tuple(""), Err(err(1, "'('", "the end of the text")));
    assert_eq!(parse_tuple("(1 2)"), Err(err(4, "',' or ')'", "'2'")));
    assert_eq!(parse_tuple("(1,)"), Err(err(4, "a value", "')'")));
    assert_eq!(
        parse_tuple("(1"),
        Err(err(3, "',' or ')'", "the end of the text"))
    );
    assert_eq!(
        parse_tuple("(1) x"),
        Err(err(5, "the end of the text", "'x'"))
    );
    assert_eq!(parse_tuple("(yes)"), Err(err(2, "a value or ')'", "'yes'")));
    assert_eq!(
        parse_tuple("(-x)"),
        Err(err(3, "a number, 'inf' or 'nan'", "'x'"))
    );
}

#[test]
fn columns_count_chars_not_bytes() {
    assert_eq!(parse_tuple(r#"("é€", @)"#), Err(err(8, "a value", "'@'")));
}

#[test]
fn template_fields_are_refused_in_tuples() {
    assert_eq!(
        parse_tuple(r#"("a", ?int)"#),
        Err(err(7, "a value", "the template field '?int'"))
    );
    assert_eq!(
        parse_tuple("(1, 2, 3 ..= 4)"),
        Err(err(8, "a value", "the template field '3 ..= 4'"))
    );
    assert_eq!(
        parse_tuple(r#"("img-"*)"#),
        Err(err(2, "a value", r#"the template field '"img-"*'"#))
    );
    assert_eq!(
        parse_tuple("(*)"),
        Err(err(2, "a value", "the template field '*'"))
    );
}

#[test]
fn number_errors() {
    assert_eq!(
        parse_tuple("(1e)"),
        Err(err(4, "a digit of the exponent", "')'"))
    );
    assert_eq!(parse_tuple("(-)"), Err(err(3, "a digit", "')'")));
    assert_eq!(
        parse_tuple("(1, -2e308)"),
        Err(err(
            5,
            "a float of magnitude at most 1.7976931348623157e308",
            "'-2e308'"
        ))
    );
    assert_eq!(parse_tuple("(1e-400)"), Ok(crate::tuple!(0.0)));
    assert_eq!(parse_tuple("(1.)"), Err(err(3, "',' or ')'", "'.'")));
    assert_eq!(
        parse_tuple("(nan(0x0))"),
        Err(err(8, "a NaN payload from 0x1 to 0xfffffffffffff", "'0'"))
    );
    assert_eq!(parse_tuple("(nan(1))"), Err(err(6, "'0x'", "'1'")));
    assert_eq!(
        parse_tuple("(nan(0x1]"),
        Err(err(9, "a hex digit or ')'", "']'"))
    );
}

#[test]
fn string_and_bytes_errors() {
    assert_eq!(
        parse_tuple(r#"("abc"#),
        Err(err(6, "'\"' closing the string", "the end of the text"))
    );
    assert_eq!(
        parse_tuple(r#"("a\q")"#),
        Err(err(
            5,
            "an escape: \\\", \\\\, \\n, \\t, \\r or \\u{...}",
            "'q'"
        ))
    );
    assert_eq!(
        parse_tuple(r#"("\u{d800}")"#),
        Err(err(6, "a Unicode scalar value in hex", "'d800'"))
    );
    assert_eq!(parse_tuple(r#"("\u41")"#), Err(err(5, "'{'", "'4'")));
    assert_eq!(
        parse_tuple(r#"(b"0g")"#),
        Err(err(5, "a hex digit or '\"'", "'g'"))
    );
    assert_eq!(
        parse_tuple(r#"(1, b"abc")"#),
        Err(err(10, "an even number of hex digits", "3 digits"))
    );
}

#[test]
fn template_errors() {
    assert_eq!(
        parse_template("(?integer)"),
        Err(err(
            3,
            "a kind: int, float, str, bool or bytes",
            "'integer'"
        ))
    );
    assert_eq!(
        parse_template("(?)"),
        Err(err(3, "a kind: int, float, str, bool or bytes", "')'"))
    );
    assert_eq!(
        parse_template("(1, 10..2.5)"),
        Err(err(
            9,
            "an upper bound of the lower bound's kind, int",
            "the float '2.5'"
        ))
    );
    assert_eq!(
        parse_template("(true..false)"),
        Err(err(2, "a range bound of kind int, float or str", "a bool"))
    );
    assert_eq!(
        parse_template("(1..)"),
        Err(err(5, "the range's upper bound", "')'"))
    );
}
