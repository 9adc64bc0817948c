"""Stop strings matched on the streamed text: only a tail that could begin one waits,
with the rest of its piece (pieces are tokens: what goes out stays whole tokens)."""

from __future__ import annotations

from specialists.stops import StopScanner


def _run(pieces, stops):
    scanner, sent, stopped = StopScanner(stops), [], False
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        sent.append(text)
        if stopped:
            break
    if not stopped:
        sent[-1] += scanner.flush()
    return sent, stopped


def test_text_that_cannot_begin_a_stop_string_goes_out_at_once():
    sent, stopped = _run([" The", " capital", " is", " Paris."], ["\nQuestion:"])
    assert sent == [" The", " capital", " is", " Paris."] and not stopped


def test_a_stop_string_ends_the_answer_and_is_never_sent():
    sent, stopped = _run([" Paris.", "\n", "Quest", "ion:", " next"], ["\nQuestion:"])
    assert stopped and "".join(sent) == " Paris."
    assert sent == [" Paris.", "", "", ""]  # the tail waited while it could be the stop


def test_a_tail_that_turns_out_not_to_be_a_stop_string_is_sent_with_what_follows():
    sent, stopped = _run([" a\n", "Quiet", " b"], ["\nQuestion:"])
    assert sent == ["", " a\nQuiet", " b"] and not stopped  # " a\n" waits whole


def test_a_token_that_may_begin_a_stop_string_waits_whole():
    # Gemma's "\n\n" token: its second line break could begin "\nQuestion:"; sending the
    # first alone would leave a text a continued answer re-reads as other tokens
    sent, stopped = _run([" collisions.", "\n\n", "The", " hash"], ["\nQuestion:"])
    assert sent == [" collisions.", "", "\n\nThe", " hash"] and not stopped


def test_the_earliest_of_several_stop_strings_wins_and_held_text_is_flushed_at_the_end():
    sent, stopped = _run(["x <e", "nd> y ###"], ["###", "<end>"])
    assert stopped and "".join(sent) == "x "
    sent, stopped = _run(["done <e"], ["<end>"])
    assert sent == ["done <e"] and not stopped  # the answer ended: nothing can follow
    assert _run(["a", "b"], [""]) == (["a", "b"], False)  # empty stop strings are ignored
