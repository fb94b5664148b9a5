"""The request card: escaping, Block Kit limits, the warning, approvals and buttons."""

import json

from core_fixtures import request

from byoi_bot.core.checks import Check, Severity
from byoi_bot.core.ports import CardView
from byoi_bot.core.states import State
from byoi_bot.slack.cards import card_blocks


def view(r, **changes) -> CardView:
    values = {
        "request": r,
        "approvers": ("U0BOB", "S0OPS"),
        "approved_by": (),
        "required": 1,
        "status_line": "⏳ *pending approval*",
    }
    values.update(changes)
    return CardView(**values)


def all_text(blocks) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_user_text_is_escaped_so_it_cannot_ping_or_fake_links():
    r = request(description="<!channel> see <https://evil.example|your bank> & more")
    text = all_text(card_blocks(view(r))[0])
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "&amp; more" in text


def test_long_values_are_truncated_within_block_kit_limits():
    r = request(description="x" * 10_000)
    blocks, _ = card_blocks(view(r))
    assert len(blocks) <= 50
    for block in blocks:
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
    assert "…" in all_text(blocks)


def test_secrets_are_never_on_the_card():
    r = request()
    r.spec = r.spec.with_secrets(
        {"headers": [["Authorization", "Bearer s3cr3t"]], "user_data": "pw"}
    )
    text = all_text(card_blocks(view(r))[0])
    assert "s3cr3t" not in text and "Authorization" in text


def test_pending_card_warns_names_approvers_and_offers_buttons():
    r = request()
    r.checks = [Check("esp", Severity.WARNING, "no EFI loader path").to_dict()]
    blocks, fallback = card_blocks(view(r))
    text = all_text(blocks)
    assert "ERASES ALL DATA" in text
    assert "<@U0BOB>" in text and "<!subteam^S0OPS>" in text and "0/1" in text
    assert "Expires <!date^" in text and "no EFI loader path" in text
    actions = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == ["byoi_approve", "byoi_reject"]
    assert all(e["value"] == r.id for e in actions[0]["elements"])
    assert r.id in fallback


def test_finished_card_has_no_buttons_and_no_warning():
    r = request(state=State.DONE)
    blocks, _ = card_blocks(view(r, approved_by=("U0BOB",), progress_fraction=1.0))
    text = all_text(blocks)
    assert not any(b["type"] == "actions" for b in blocks)
    assert "ERASES" not in text and "Approved by <@U0BOB>" in text and "100%" in text


def test_unsatisfiable_policy_is_shown():
    r = request()
    text = all_text(card_blocks(view(r, unsatisfiable="policy `x` needs 2"))[0])
    assert "can never be approved" in text


def test_explanations_and_check_lines_are_escaped():
    from byoi_bot.core import messages
    from byoi_bot.core.ports import Explanation

    e = Explanation("<!channel> down", "<https://evil|x>", "do & see", raw="<!here>")
    text = messages.explanation(e)
    assert "<!" not in text and "<https" not in text and "&amp; see" in text
    line = messages.check_line(Check("reachable", Severity.BLOCKING, "HTTP 403 <!channel>"))
    assert "&lt;!channel&gt;" in line


def test_each_sent_value_is_shown_once_and_the_purpose_beside_it():
    r = request(hostname="web-1729", efi_bootloader="\\efi\\debian\\shimx64.efi", description="q4")
    text = all_text(card_blocks(view(r))[0])
    assert text.count("web-1729") == 1 and text.count("shimx64.efi") == 1, text
    assert "*Why and when*\\nq4\\nstarts once approved" in text
