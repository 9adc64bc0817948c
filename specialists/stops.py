"""Stop strings matched on a streamed answer's text as it comes.

vLLM, given stop strings, holds back the last (longest stop string's length - 1)
characters of the answer at every step, whatever they are, so that no part of a stop
string is ever sent: with Gemma's ``"\\nQuestion:"`` the first 9 characters, often the
first two or three tokens, wait for the decode steps after them (measured here at 16
streaming clients: ~430 ms of a ~1.1 s time to first token). With
``include_stop_str_in_output`` vLLM holds nothing back and still stops at the stop
string's token (its token counts and log-probabilities stay exact); this cuts the stop
string off, holding back only a tail that could still begin one, and with it the whole
of the piece that tail is in: pieces are tokens, and what is sent stays whole tokens
(an answer continued elsewhere from its text re-reads the tokens it had).
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Feed it each new piece of text; it returns what can be sent now and whether a stop
    string has ended the answer (the stop string itself is never sent, as OpenAI's API
    and vLLM's default do)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        text = self.held + piece
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if found:
            self.held = ""
            return text[: min(found)], True
        keep = max((self._tail(text, s) for s in self.stops), default=0)
        if keep:  # whole pieces: the new one, and all that was held when it reaches back
            keep = len(piece) if keep <= len(piece) else len(text)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """What is still held back, at the answer's end (no stop string can follow)."""
        held, self.held = self.held, ""
        return held

    @staticmethod
    def _tail(text: str, stop: str) -> int:
        """The longest end of ``text`` that is a beginning of ``stop`` (shorter than it)."""
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                return n
        return 0
