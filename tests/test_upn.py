import pytest

from portal.upn import CHECK_LETTERS, InvalidUPN, is_valid_upn, upn_check_letter, validate_upn


def test_published_example_from_python_stdnum_is_valid():
    # python-stdnum's doctest for stdnum.gb.upn: B801200005001 valid, A801200005001 not.
    assert validate_upn("B801200005001") == "B801200005001"
    assert not is_valid_upn("A801200005001")


def test_census_error_1510_worked_example_digits_give_check_letter_p():
    # MIS suppliers' guidance for census error 1510 works through 207000016049; its products
    # (2x2)+(4x7)+(9x1)+(10x6)+(12x4)+(13x9) add up to 266, and 266 mod 23 = 13 = P.
    # (The guidance prints 267 and Q: an arithmetic slip, which this test pins down.)
    assert upn_check_letter("207000016049") == "P"
    assert validate_upn("P207000016049") == "P207000016049"
    assert not is_valid_upn("Q207000016049")
    assert not is_valid_upn("B207000016049")


def test_check_letter_table_skips_i_o_and_s():
    assert len(CHECK_LETTERS) == 23
    assert not set("IOS") & set(CHECK_LETTERS)
    assert CHECK_LETTERS.index("H") == 7
    assert CHECK_LETTERS.index("J") == 8
    assert CHECK_LETTERS.index("P") == 13
    assert CHECK_LETTERS.index("T") == 16
    assert CHECK_LETTERS.index("Z") == 22


@pytest.mark.parametrize(
    ("upn", "weighted_sum"),
    [
        # 2x2 + 0x3 + 1x4 + 3x5 + 1x9 + 5x10 + 1x13 = 95; 95 mod 23 = 3 -> D
        ("D201300015001", 95),
        # Temporary UPN: final A counts 0. 9x2+3x3+7x4+2x5+1x8+1x9+8x10 = 162; 162 mod 23 = 1 -> B
        ("B93720011800A", 162),
        # Temporary UPN ending in Z (value 22): 3x2+8x3+2x5+5x6+1x7+1x9+2x10+3x11+4x12+22x13 = 473;
        # 473 mod 23 = 13 -> P
        ("P38025101234Z", 473),
    ],
)
def test_upns_computed_by_hand_are_valid(upn, weighted_sum):
    assert CHECK_LETTERS[weighted_sum % 23] == upn[0]
    assert validate_upn(upn) == upn


def test_temporary_upn_final_letter_takes_its_table_value():
    # Changing the final letter changes the check letter by weight 13 x (difference in value).
    assert upn_check_letter("93720011800A") == "B"
    assert upn_check_letter("93720011800B") == CHECK_LETTERS[(162 + 13) % 23]


def test_input_is_normalised_to_upper_case_without_spaces():
    assert validate_upn("  b801200005001\n") == "B801200005001"
    assert validate_upn("B801 2000 05001") == "B801200005001"
    assert validate_upn("b93720011800a") == "B93720011800A"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter the pupil's UPN"),
        ("   ", "Enter the pupil's UPN"),
        ("B80120000500", "13 characters long; this one has 12"),
        ("B8012000050011", "13 characters long; this one has 14"),
        ("1801200005001", "starts with a check letter"),
        ("I801200005001", "starts with a check letter"),
        ("S801200005001", "starts with a check letter"),
        ("X80120000A001", "12 digits"),
        ("B801200005O01", "12 digits"),
        ("B80120000500I", "12 digits"),
        ("B80120000500S", "12 digits"),
        ("B80120000500-", "12 digits"),
        ("A801200005001", "check letter does not match"),
        ("C93720011800A", "check letter does not match"),
    ],
)
def test_invalid_upns_are_refused_with_a_clear_message(text, message):
    with pytest.raises(InvalidUPN, match=message):
        validate_upn(text)


def test_every_wrong_check_letter_is_refused():
    body = "801200005001"
    for letter in CHECK_LETTERS:
        assert is_valid_upn(letter + body) is (letter == "B")


def test_error_messages_never_repeat_the_upn():
    for text in ("A801200005001", "X80120000A001", "B8012000050011"):
        with pytest.raises(InvalidUPN) as caught:
            validate_upn(text)
        assert text not in str(caught.value)
        assert "80120000" not in str(caught.value)


def test_check_letter_needs_a_twelve_character_body():
    with pytest.raises(ValueError, match="12 characters"):
        upn_check_letter("80120000500")
