"""The portable placeholder translator (sans-IO): ``?`` and ``:name`` to each driver's style."""

from __future__ import annotations

import pytest

from romancy_trio import InvalidInputError, PlaceholderError
from romancy_trio.storage._placeholders import scan, translate


def pg(query: str, params: object = ()) -> tuple[str, object]:
    return translate(query, params, "postgres")  # type: ignore[arg-type]


def lite(query: str, params: object = ()) -> tuple[str, object]:
    return translate(query, params, "sqlite")  # type: ignore[arg-type]


def test_positional_becomes_percent_s_on_postgres_and_stays_on_sqlite() -> None:
    q = "INSERT INTO t (a, b) VALUES (?, ?)"
    assert pg(q, (1, 2)) == ("INSERT INTO t (a, b) VALUES (%s, %s)", (1, 2))
    assert lite(q, [1, 2]) == (q, [1, 2])


def test_named_becomes_pyformat_on_postgres_and_stays_on_sqlite() -> None:
    q = "SELECT * FROM t WHERE a = :a AND b = :b_2 OR a = :a"
    args = {"a": 1, "b_2": 2}
    assert pg(q, args) == (
        "SELECT * FROM t WHERE a = %(a)s AND b = %(b_2)s OR a = %(a)s", args)
    assert lite(q, args) == (q, args)


def test_extra_names_in_the_mapping_are_allowed() -> None:
    assert pg("SELECT :a", {"a": 1, "unused": 2})[0] == "SELECT %(a)s"


def test_literal_percent_is_doubled_on_postgres_when_there_are_parameters() -> None:
    q = "SELECT * FROM t WHERE name LIKE '100%' AND x = ? AND y % 2 = 0"
    assert pg(q, (1,))[0] == "SELECT * FROM t WHERE name LIKE '100%%' AND x = %s AND y %% 2 = 0"
    assert lite(q, (1,))[0] == q


def test_a_statement_without_placeholders_is_sent_as_written() -> None:
    q = "SELECT '100%', x::int FROM t -- ?\n"
    assert pg(q) == (q, ())
    assert pg(q, {}) == (q, ())
    assert lite(q, []) == (q, ())


def test_question_marks_and_colons_in_string_literals_are_left_alone() -> None:
    q = "SELECT 'a?b :c', 'it''s ? :x', ? "
    assert pg(q, (1,))[0] == "SELECT 'a?b :c', 'it''s ? :x', %s "


def test_e_strings_with_backslash_escapes() -> None:
    q = r"SELECT E'it\'s ? here', ?"
    assert pg(q, (1,))[0] == r"SELECT E'it\'s ? here', %s"
    q = r"SELECT e'\\', ?"  # an escaped backslash ends right before the quote
    assert pg(q, (1,))[0] == r"SELECT e'\\', %s"


def test_a_plain_string_after_an_identifier_ending_in_e_has_no_backslash_escapes() -> None:
    q = r"SELECT name'x\', ?"  # 'x\' is a complete literal in standard SQL
    assert pg(q, (1,))[0] == r"SELECT name'x\', %s"


def test_quoted_identifiers_are_left_alone() -> None:
    q = 'SELECT "weird?col", "a "" :b" FROM t WHERE x = :x'
    assert pg(q, {"x": 1})[0] == 'SELECT "weird?col", "a "" :b" FROM t WHERE x = %(x)s'


def test_sqlite_bracket_and_backtick_identifiers() -> None:
    assert scan("SELECT [a?b], `c:d` FROM t", "sqlite").positional == 0


def test_line_and_block_comments_are_left_alone() -> None:
    q = "SELECT ? -- what about :x?\n, /* a ? and :y */ ?"
    assert pg(q, (1, 2))[0] == "SELECT %s -- what about :x?\n, /* a ? and :y */ %s"


def test_nested_block_comments_on_postgres() -> None:
    q = "SELECT /* outer /* inner ? */ still comment ? */ ?"
    assert pg(q, (1,))[0] == "SELECT /* outer /* inner ? */ still comment ? */ %s"


def test_sqlite_block_comments_do_not_nest() -> None:
    q = "SELECT /* a /* b */ ?"
    assert scan(q, "sqlite").positional == 1


def test_dollar_quoted_bodies_are_left_alone() -> None:
    q = "DO $body$ BEGIN PERFORM '?', :x; END $body$; SELECT $$ ? $$, ?"
    assert pg(q, (1,))[0] == "DO $body$ BEGIN PERFORM '?', :x; END $body$; SELECT $$ ? $$, %s"


def test_native_dollar_numbers_are_not_dollar_quotes() -> None:
    assert scan("SELECT $1, ?", "postgres").positional == 1


def test_casts_are_not_named_parameters() -> None:
    assert pg("SELECT x::int, :y::text, '1'::jsonb", {"y": 2})[0] == (
        "SELECT x::int, %(y)s::text, '1'::jsonb")
    assert pg("SELECT now()::date")[0] == "SELECT now()::date"


def test_colon_equals_and_slices_are_not_parameters() -> None:
    assert scan("SELECT f(a := 1), arr[1:2]", "postgres").names == ()


def test_mixing_styles_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match="mixes '\\?' and named placeholders"):
        pg("SELECT ?, :a", (1,))
    with pytest.raises(PlaceholderError, match="mixes"):
        lite("SELECT :a, ?", {"a": 1})


def test_a_mapping_with_question_marks_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match="mapping was given but the statement uses"):
        pg("SELECT ?", {"a": 1})


def test_a_sequence_with_named_placeholders_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match="pass a mapping, not a tuple"):
        pg("SELECT :a", (1,))


def test_a_missing_name_is_an_error_naming_it() -> None:
    with pytest.raises(PlaceholderError, match="no value for placeholder\\(s\\) :b"):
        lite("SELECT :a, :b", {"a": 1})


def test_a_wrong_count_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match="2 '\\?' placeholder\\(s\\) but 3 value"):
        pg("SELECT ?, ?", (1, 2, 3))
    with pytest.raises(PlaceholderError, match="0 '\\?' placeholder\\(s\\) but 2 value"):
        pg("SELECT 1", (1, 2))
    with pytest.raises(PlaceholderError, match="no placeholders but values for :a"):
        pg("SELECT 1", {"a": 1})


def test_a_bare_string_as_parameters_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match="wrap a single value"):
        pg("SELECT ?", "x")


def test_the_error_is_an_invalid_input_and_a_value_error() -> None:
    assert issubclass(PlaceholderError, InvalidInputError)
    assert issubclass(PlaceholderError, ValueError)


def test_an_unknown_dialect_is_named() -> None:
    with pytest.raises(ValueError, match="no placeholder translation for dialect 'oracle'"):
        translate("SELECT ?", (1,), "oracle")


def test_jsonb_question_mark_operator_reads_as_a_placeholder() -> None:
    """Documented collision: ``doc ? 'key'`` needs jsonb_exists() or the native session."""
    with pytest.raises(PlaceholderError):
        pg("SELECT doc ? 'k' FROM t WHERE id = ?", (1,))
    assert pg("SELECT jsonb_exists(doc, 'k') FROM t WHERE id = ?", (1,))[0].endswith("%s")


def test_unterminated_quotes_are_left_for_the_database_to_report() -> None:
    assert scan("SELECT 'oops ?", "postgres").positional == 0
    assert scan("SELECT /* oops ?", "postgres").positional == 0
    assert scan("SELECT $x$ oops ?", "postgres").positional == 0


def test_scans_are_cached() -> None:
    q = "SELECT ? /* cache me */"
    assert scan(q, "postgres") is scan(q, "postgres")


def my(query: str, params: object = ()) -> tuple[str, object]:
    return translate(query, params, "mysql")  # type: ignore[arg-type]


def test_mysql_uses_pyformat_and_steps_over_its_own_lexis() -> None:
    q = ("SELECT `a?b`, 'it\\'s ?', x FROM t # a comment with ? and :n\n"
         "WHERE a = ? AND b LIKE '5%'")
    assert my(q, (1,)) == (
        "SELECT `a?b`, 'it\\'s ?', x FROM t # a comment with ? and :n\n"
        "WHERE a = %s AND b LIKE '5%%'", (1,))
    assert my("SELECT :a, ':b'", {"a": 1}) == ("SELECT %(a)s, ':b'", {"a": 1})
