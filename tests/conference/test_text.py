"""Text people type (conference/fields.py through conference/models.py), slugs and passwords."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from pydantic import ValidationError

from conference.models import AccountCreate, MeetingCreate, UnitCreate, UnitKind
from conference.passwords import hash_password, verify_password
from conference.slugs import ascii_slug

VIETNAMESE = "Họp giao ban Ủy ban nhân dân tỉnh Quảng Bình — Đồng Hới, Bố Trạch"
EMOJI = "Họp trực tuyến 📹🇻🇳 👩🏽‍💻"


def meeting(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "Họp giao ban tháng 5",
        "starts_at": "2025-05-05T08:00:00+07:00",
        "ends_at": "2025-05-05T10:00:00+07:00",
        "chair_unit": "QB",
    }
    data.update(overrides)
    return data


def unit(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"code": "QB-VP", "name": "Văn phòng UBND tỉnh", "kind": "department"}
    data.update(overrides)
    return data


def account(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": "thuky",
        "display_name": "Thư ký Văn phòng",
        "password": "mật-khẩu-đủ-dài",
        "roles": ["secretariat"],
    }
    data.update(overrides)
    return data


def errors_of(model: Any, data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """``(type, loc)`` of every validation error ``data`` raises in ``model``."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(e["type"], tuple(e["loc"])) for e in info.value.errors()]


# --- text is kept exactly ---------------------------------------------------------


@pytest.mark.parametrize("text", [VIETNAMESE, EMOJI, "  Họp có khoảng trắng ở hai đầu  "])
def test_meeting_title_is_kept_byte_for_byte(text: str) -> None:
    parsed = MeetingCreate.model_validate(meeting(title=text, agenda=[text, f"{text}\nDòng 2"]))
    assert parsed.title.encode("utf-8") == text.encode("utf-8")
    assert parsed.agenda[0].encode("utf-8") == text.encode("utf-8")
    assert parsed.agenda[1] == f"{text}\nDòng 2"


def test_decomposed_vietnamese_is_not_normalised() -> None:
    nfd = unicodedata.normalize("NFD", VIETNAMESE)
    assert nfd != VIETNAMESE
    parsed = MeetingCreate.model_validate(meeting(title=nfd))
    assert parsed.title.encode("utf-8") == nfd.encode("utf-8")
    parsed_unit = UnitCreate.model_validate(unit(name=nfd))
    assert parsed_unit.name.encode("utf-8") == nfd.encode("utf-8")


@pytest.mark.parametrize("name", [VIETNAMESE, EMOJI, "Xã Thượng Trạch"])
def test_unit_name_and_display_name_are_kept_byte_for_byte(name: str) -> None:
    assert UnitCreate.model_validate(unit(name=name)).name.encode() == name.encode()
    assert (
        AccountCreate.model_validate(account(display_name=name)).display_name.encode()
        == name.encode()
    )


def test_vietnamese_password_is_kept() -> None:
    password = "Mật khẩu có dấu 🔐"
    assert AccountCreate.model_validate(account(password=password)).password == password


# --- control characters ------------------------------------------------------------


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\r"])
def test_control_characters_are_refused_in_titles_and_agenda(ch: str) -> None:
    text = f"Họp{ch}giao ban"
    assert errors_of(MeetingCreate, meeting(title=text)) == [("value_error", ("title",))]
    assert errors_of(MeetingCreate, meeting(agenda=[text])) == [("value_error", ("agenda", 0))]


def test_lone_surrogate_is_refused_in_titles_and_agenda() -> None:
    text = "Họp\ud800giao ban"
    assert [loc for _, loc in errors_of(MeetingCreate, meeting(title=text))] == [("title",)]
    assert [loc for _, loc in errors_of(MeetingCreate, meeting(agenda=[text]))] == [("agenda", 0)]


@pytest.mark.parametrize("ch", ["\x00", "\n", "\t", "\x1f"])
def test_control_characters_are_refused_in_unit_names_and_display_names(ch: str) -> None:
    text = f"Văn phòng{ch}UBND"
    assert errors_of(UnitCreate, unit(name=text)) == [("value_error", ("name",))]
    assert errors_of(AccountCreate, account(display_name=text)) == [
        ("value_error", ("display_name",))
    ]


def test_control_character_error_names_the_code_point() -> None:
    with pytest.raises(ValidationError) as info:
        MeetingCreate.model_validate(meeting(title="Họp\x00"))
    assert "U+0000" in info.value.errors()[0]["msg"]


def test_newline_and_tab_are_allowed_in_agenda_items() -> None:
    item = "1. Báo cáo tình hình\n2. Thảo luận\n\t- ý kiến các sở"
    assert MeetingCreate.model_validate(meeting(agenda=[item])).agenda == [item]


@pytest.mark.parametrize("ch", ["\n", "\t"])
def test_newline_and_tab_are_refused_in_titles(ch: str) -> None:
    assert errors_of(MeetingCreate, meeting(title=f"Họp{ch}giao ban")) == [
        ("value_error", ("title",))
    ]


# --- blank and length ---------------------------------------------------------------


@pytest.mark.parametrize("blank", [" ", "   ", "\u3000", "\u00a0 "])
def test_blank_title_is_refused(blank: str) -> None:
    assert errors_of(MeetingCreate, meeting(title=blank)) == [("value_error", ("title",))]


def test_empty_title_is_refused() -> None:
    assert errors_of(MeetingCreate, meeting(title="")) == [("string_too_short", ("title",))]


@pytest.mark.parametrize("blank", ["", "  ", "\n\n", "\t"])
def test_blank_agenda_item_is_refused(blank: str) -> None:
    types = errors_of(MeetingCreate, meeting(agenda=["Mục 1", blank]))
    assert len(types) == 1
    assert types[0][1] == ("agenda", 1)
    assert types[0][0] in {"string_too_short", "value_error"}


def test_blank_unit_name_is_refused() -> None:
    assert errors_of(UnitCreate, unit(name="   ")) == [("value_error", ("name",))]


def test_title_of_300_characters_is_accepted_and_301_refused() -> None:
    # "ệ" is one code point but three UTF-8 bytes: the limit is on characters.
    assert MeetingCreate.model_validate(meeting(title="ệ" * 300)).title == "ệ" * 300
    assert errors_of(MeetingCreate, meeting(title="ệ" * 301)) == [("string_too_long", ("title",))]


def test_over_long_agenda_item_and_names_are_refused() -> None:
    assert errors_of(MeetingCreate, meeting(agenda=["a" * 1001])) == [
        ("string_too_long", ("agenda", 0))
    ]
    assert errors_of(UnitCreate, unit(name="Đ" * 201)) == [("string_too_long", ("name",))]
    assert errors_of(AccountCreate, account(display_name="x" * 201)) == [
        ("string_too_long", ("display_name",))
    ]


def test_too_many_agenda_items_are_refused() -> None:
    assert MeetingCreate.model_validate(meeting(agenda=["Mục"] * 100)).agenda == ["Mục"] * 100
    assert errors_of(MeetingCreate, meeting(agenda=["Mục"] * 101)) == [("too_long", ("agenda",))]


def test_short_and_long_passwords_are_refused() -> None:
    assert errors_of(AccountCreate, account(password="ngắn")) == [
        ("string_too_short", ("password",))
    ]
    assert errors_of(AccountCreate, account(password="x" * 257)) == [
        ("string_too_long", ("password",))
    ]


# --- codes and usernames ----------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["QB", "QB-VP", "QB-BOTRACH-THUONGTRACH", "vp_1.2", "9", "A" + "b" * 31]
)
def test_valid_unit_codes_are_accepted(code: str) -> None:
    assert UnitCreate.model_validate(unit(code=code, parent=code)).code == code


@pytest.mark.parametrize(
    "code",
    ["", "-QB", ".QB", "_QB", "QB VP", "QB/VP", "ĐH", "QB\n", "A" + "b" * 32, "QB😀"],
)
def test_invalid_unit_codes_are_refused(code: str) -> None:
    (kind, loc), *rest = errors_of(UnitCreate, unit(code=code))
    assert (loc, rest) == (("code",), [])
    assert kind in {"string_pattern_mismatch", "string_too_long"}
    assert errors_of(MeetingCreate, meeting(chair_unit=code)) == [
        ("string_pattern_mismatch", ("chair_unit",))
    ]
    assert errors_of(MeetingCreate, meeting(invited_units=["QB", code])) == [
        ("string_pattern_mismatch", ("invited_units", 1))
    ]


def test_invalid_parent_code_is_refused() -> None:
    assert errors_of(UnitCreate, unit(parent="Quảng Bình")) == [
        ("string_pattern_mismatch", ("parent",))
    ]


@pytest.mark.parametrize("username", ["Thuky", "t", "thư-ký", "thu ky", "-thuky", "a" * 65])
def test_invalid_usernames_are_refused(username: str) -> None:
    assert errors_of(AccountCreate, account(username=username)) == [
        ("string_pattern_mismatch", ("username",))
    ]


def test_unknown_unit_kind_and_role_are_refused() -> None:
    assert errors_of(UnitCreate, unit(kind="village")) == [("enum", ("kind",))]
    assert errors_of(AccountCreate, account(roles=["king"])) == [("enum", ("roles", 0))]
    assert errors_of(AccountCreate, account(roles=[])) == [("too_short", ("roles",))]
    assert UnitCreate.model_validate(unit(kind="commune")).kind is UnitKind.COMMUNE


# --- datetimes and unknown fields -------------------------------------------------------


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
def test_naive_datetimes_are_refused_with_timezone_aware(field: str) -> None:
    assert errors_of(MeetingCreate, meeting(**{field: "2025-05-05T08:00:00"})) == [
        ("timezone_aware", (field,))
    ]


def test_aware_datetimes_keep_their_offset() -> None:
    parsed = MeetingCreate.model_validate(meeting(starts_at="2025-05-05T08:00:00+07:00"))
    assert parsed.starts_at.utcoffset() is not None
    assert parsed.starts_at.utcoffset().total_seconds() == 7 * 3600  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (MeetingCreate, meeting(status="live")),
        (UnitCreate, unit(id=1)),
        (AccountCreate, account(password_hash="$argon2id$...")),
    ],
)
def test_unknown_fields_are_refused_with_extra_forbidden(model: Any, data: dict[str, Any]) -> None:
    types = errors_of(model, data)
    assert len(types) == 1
    assert types[0][0] == "extra_forbidden"


# --- slugs --------------------------------------------------------------------------------


def test_ascii_slug_of_vietnamese_with_d_stroke() -> None:
    assert ascii_slug("Họp giao ban Đồng Hới") == "hop-giao-ban-dong-hoi"


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Ủy ban nhân dân tỉnh Quảng Bình", "uy-ban-nhan-dan-tinh-quang-binh"),
        ("đường ĐT-565, xã Thượng Trạch!", "duong-dt-565-xa-thuong-trach"),
        ("  --Họp  --  ", "hop"),
        (unicodedata.normalize("NFD", "Họp giao ban Đồng Hới"), "hop-giao-ban-dong-hoi"),
    ],
)
def test_ascii_slug_examples(text: str, slug: str) -> None:
    assert ascii_slug(text) == slug


@pytest.mark.parametrize("text", ["", "   ", "📹🇻🇳", "!!!", "—"])
def test_ascii_slug_of_nothing_usable_is_meeting(text: str) -> None:
    assert ascii_slug(text) == "meeting"


def test_ascii_slug_is_cut_to_max_length_without_trailing_dash() -> None:
    slug = ascii_slug("Họp " * 40, max_length=10)
    assert slug == "hop-hop-ho"
    assert ascii_slug("abc def", max_length=4) == "abc"
    assert len(ascii_slug("Đồng Hới " * 20)) <= 60


# --- passwords -----------------------------------------------------------------------------


def test_verify_password_accepts_the_right_password() -> None:
    password = "mật-khẩu-thử 🔐"
    stored = hash_password(password)
    assert stored.startswith("$argon2id$")
    assert password not in stored
    assert verify_password(stored, password) is True


def test_verify_password_refuses_a_wrong_password() -> None:
    stored = hash_password("mật-khẩu-đúng")
    assert verify_password(stored, "mật-khẩu-sai") is False
    # Same letters, other normalisation: a different password.
    assert verify_password(stored, unicodedata.normalize("NFD", "mật-khẩu-đúng")) is False


def test_verify_password_with_no_hash_returns_false() -> None:
    assert verify_password(None, "hoinghi-no-such-user") is False
    assert verify_password(None, "anything") is False
    assert verify_password("", "anything") is False


def test_verify_password_with_a_garbage_hash_returns_false() -> None:
    assert verify_password("not-a-hash", "anything") is False
