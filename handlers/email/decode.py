"""Text out of the bytes of a received letter: charsets (header words, file names: header_words).

Complainants write from QQ Mail, 163/126, Foxmail and Outlook, in Chinese: charset labels lie
(GBK text labelled gb2312), headers arrive as raw 8-bit bytes, encoded words are split in the
middle of a character. Everything here decodes leniently and reports what it had to guess.
"""

from __future__ import annotations

import codecs
import re
import threading

from charset_normalizer import from_bytes as detect_charset

# ---------------------------------------------------------------------------------------------
# Charsets


# Labels that mean a codec other than their name: GB2312/GBK-labelled text is routinely GBK or
# GB18030 (Outlook, QQ), GB18030 is their superset; Big5 mail from Windows uses MS extensions.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gb2312-80": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "chinese": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cp950": "cp950",
    "ks_c_5601-1987": "cp949",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_NO_CHARSET = {"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "8bit"}
# Labels under which any byte decodes, so a lie is never noticed by decoding alone.
_SINGLE_BYTE = {"ascii", "iso8859-1", "cp1252", "iso8859-15"}
_CHINESE_CODECS = {"gb18030", "big5hkscs", "cp950"}


def codec_for(label: str | None) -> str | None:
    """The Python codec to use for a MIME charset label, or None when it names none we know."""
    name = (label or "").strip().strip("\"'").lower()
    if name in _NO_CHARSET:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


# Charsets written in 7-bit bytes: ASCII-looking data is not ASCII text under these labels.
_SEVEN_BIT = {"iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_3", "iso2022_jp_ext",
              "iso2022_kr", "utf-7", "hz"}  # fmt: skip
_ISO2022_ESCAPE = re.compile(rb"\x1b(?:\$[@AB]|\$\([CDQ]|\([BIJ])")
# "Nearly everything decodes": damage in at most this many places per non-ASCII byte.
DAMAGE_TOLERATED = 0.05


def decode_bytes(data: bytes, label: str | None) -> tuple[str, str | None]:
    """Decode `data` declared as `label`; return (text, problem or None).

    The declared charset is preferred: when it decodes all but a few stray bytes (a byte lost
    or changed on the way), those are replaced, the problem says so, and no other charset is
    tried (one bad byte must not turn UTF-8 Chinese into GB18030 mojibake).
    """
    codec = codec_for(label)
    if data.isascii():
        return _seven_bit(data, codec, label)
    if codec is None or codec in _SEVEN_BIT:
        text, found = _detect(data)
        what = f"unknown charset {label!r}" if label else "no charset"
        return text, f"charset_guessed: {what}, decoded as {found}"
    if codec in _SINGLE_BYTE:
        # A single-byte label never fails, so look for a better fit first (GBK labelled
        # latin-1), but only where the bytes look like a multi-byte text: accented letters of
        # European text stand alone between ASCII letters.
        better = _strict_fit(data)
        plausible = _latin1_plausible(data) and not _looks_multibyte(data)
        if better is not None and (better[1] == "utf-8" or not plausible):
            return better[0], f"charset_mismatch: declared {label}, decoded as {better[1]}"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        cut = _cut_short(data, codec)
        if cut is not None:  # only the last character cut short (a split word, a truncation)
            return cut, f"charset_damaged: declared {label}, the last character cut short"
        text, bad = replaced(data, codec)
        utf8 = codec != "utf-8" and _strict_utf8(data)
        if nearly_all(data, bad) and not utf8:  # UTF-8 whole beats the label with damage
            return text, f"charset_damaged: declared {label}, {bad} bytes replaced"
        text, found = _detect(data)
        return text, f"charset_mismatch: declared {label}, decoded as {found}"
    # GB18030 decodes UTF-8 bytes without error, into rare characters: web forms do this.
    # But traditional characters in GBK are rare in GB2312 too, and two of their bytes may be
    # UTF-8 by chance ("請" is UTF-8 "Ո"): UTF-8 only when it reads as writing.
    if (
        codec in _CHINESE_CODECS
        and _chinese_score(text, codec) < 0.5
        and _strict_utf8(data)
        and _reads_as_writing(data.decode("utf-8"))
    ):
        return data.decode("utf-8"), f"charset_mismatch: declared {label}, decoded as utf-8"
    return text, None


def _reads_as_writing(text: str) -> bool:
    """Whether the non-ASCII characters are mostly CJK, Latin letters or common marks."""
    wide = [c for c in text if ord(c) > 0x7F]
    fitting = sum(
        1
        for c in wide
        if _HANZI.match(c) or "\u00c0" <= c <= "\u024f" or "\u2000" <= c <= "\u206f"
        or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"
    )  # fmt: skip
    return fitting >= 0.8 * len(wide)


def _cut_short(data: bytes, codec: str) -> str | None:
    """`data` decoded when it is whole but for an incomplete last character (a split word, a
    truncation): what an incremental decoder takes without error, waiting for more."""
    if codec != "utf-8" and _strict_utf8(data):
        return None  # whole UTF-8 under another label: not a cut
    try:
        text = codecs.getincrementaldecoder(codec)().decode(data, final=False)
    except UnicodeDecodeError:
        return None
    if not text or text.isascii():
        return None
    if codec in _CHINESE_CODECS and _chinese_score(text, codec) < 0.5:
        return None
    return text + "\ufffd"


def _seven_bit(data: bytes, codec: str | None, label: str | None) -> tuple[str, str | None]:
    """ASCII bytes: ASCII text, unless the label (or ISO-2022 escapes) says a 7-bit charset."""
    if codec not in _SEVEN_BIT:
        if not _ISO2022_ESCAPE.search(data):
            return data.decode("ascii"), None
        codec = "iso2022_jp_2"  # escapes without the label: Japanese (or Korean) mail
    assert codec is not None
    for candidate in dict.fromkeys([codec, "iso2022_jp_2", "iso2022_jp_ext"]):
        if candidate == codec or codec.startswith("iso2022_jp"):
            try:
                text = data.decode(candidate)
            except UnicodeDecodeError:
                continue
            if candidate == codec and codec_for(label) == codec:
                return text, None
            what = f"declared {label}" if label else "no charset"
            return text, f"charset_guessed: {what}, decoded as {candidate}"
    text, bad = replaced(data, codec)
    return text, f"charset_damaged: declared {label}, {bad} bytes replaced"


def replaced(data: bytes, codec: str) -> tuple[str, int]:
    """`data` decoded with U+FFFD for what does not decode; how many bytes were replaced."""
    _damage.bytes, _damage.runs, _damage.end = 0, 0, -1
    text = data.decode(codec, _COUNTING)
    return text, _damage.bytes


def nearly_all(data: bytes, bad: int) -> bool:
    """Whether the damage of the last `replaced` is a few stray bytes in a decodable text."""
    non_ascii = sum(1 for b in data if b > 0x7F)
    runs = _damage.runs
    return bad <= 0.25 * non_ascii and runs <= max(1, DAMAGE_TOLERATED * non_ascii)


def _count_damage(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    _damage.bytes += exc.end - exc.start
    if exc.start != _damage.end:  # adjacent bad bytes are one place of damage
        _damage.runs += 1
    _damage.end = exc.end
    return "\ufffd", exc.end


# Parsing runs in worker threads: each counts its own replacements.
_damage = threading.local()
_COUNTING = "certdesk-count-replaced"
codecs.register_error(_COUNTING, _count_damage)


def _looks_multibyte(data: bytes, least: int = 4) -> bool:
    """Non-ASCII bytes in runs, as in GBK or Big5, not alone, as in latin-1 European text."""
    runs = [len(run) for run in re.findall(rb"[\x80-\xff]+", data)]
    if sum(runs) < least:
        return False
    return sum(1 for n in runs if n == 1) <= 0.25 * len(runs)


def _strict_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_WESTERN_MARKS = set("€‚„…‘’“”•–—«»°©®±·¡¿\xa0")


def _latin1_plausible(data: bytes) -> bool:
    """Whether the 8-bit bytes read as Windows-1252 are letters (é, ß, ñ) or its usual marks;
    Chinese bytes read so are mostly symbols and controls."""
    wide = [c for c in data.decode("cp1252", "replace") if ord(c) > 0x7F]
    if not wide:
        return True
    fitting = sum(1 for c in wide if c.isalpha() or c in _WESTERN_MARKS)
    return fitting >= 0.9 * len(wide)


def _strict_fit(data: bytes) -> tuple[str, str] | None:
    """A charset that decodes all of `data` convincingly: UTF-8, else GB18030 or Big5."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if not _looks_multibyte(data, least=2) and _latin1_plausible(data):
        return None  # accented letters alone between ASCII ones: European, not Chinese
    scored = []
    for codec in ("gb18030", "big5hkscs"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        scored.append((_chinese_score(text, codec), codec == "gb18030", codec, text))
    if scored:
        score, _, codec, text = max(scored)
        if score >= 0.6:
            return text, codec
    return None


def _detect(data: bytes) -> tuple[str, str]:
    """Best-effort decoding of bytes whose charset is unknown or wrong: (text, codec used)."""
    fit = _strict_fit(data)
    if fit is not None:
        return fit
    # Nearly all UTF-8 but a stray byte (or a character cut at the end): UTF-8 it is.
    text, bad = replaced(data, "utf-8")
    if nearly_all(data, bad):
        return text, "utf-8"
    if _latin1_plausible(data):
        # Accented letters between ASCII ones: Western European, as Windows writes it.
        return data.decode("cp1252", "replace"), "cp1252"
    best = detect_charset(data).best()
    found = (codec_for(best.encoding) or best.encoding) if best is not None else None
    if best is not None and found is not None and _ascii_compatible(found):
        return str(best), found
    # Nothing fits, or the detector's guess is EBCDIC-like (it maps ASCII letters elsewhere):
    # mail text is ASCII-compatible, and here most likely Chinese.
    return data.decode("gb18030", "replace"), "gb18030"


def _ascii_compatible(codec: str) -> bool:
    try:
        return b"From: Az09 <a@b>".decode(codec) == "From: Az09 <a@b>"
    except (LookupError, UnicodeDecodeError):
        return False


def _chinese_score(text: str, codec: str) -> float:
    """Share of non-ASCII characters that are frequent in `codec`'s own table.

    Text decoded with the wrong one of GB18030/Big5 lands on rare characters and symbol rows.
    GB2312 level 1 (rows B0–D7) holds the 3,755 most used hanzi; Big5 A440–C67E the 5,401
    frequent ones; row A1 is punctuation in both, A3 full-width forms in GB2312.
    """
    table, frequent, punctuation = (
        ("gb2312", range(0xB0, 0xD8), (0xA1, 0xA3))
        if codec == "gb18030"
        else ("big5", range(0xA4, 0xC7), (0xA1,))
    )
    wide = [c for c in text if ord(c) > 0x7F]
    if not wide:
        return 1.0
    hits = 0
    for char in wide:
        try:
            lead = char.encode(table)[0]
        except UnicodeEncodeError:
            continue
        hits += lead in frequent or lead in punctuation
    return hits / len(wide)


def raw_to_str(value: str, hint: str | None = None) -> tuple[str, bool]:
    """A raw header value as parsed (8-bit bytes smuggled as surrogates) → (text, was 8-bit).

    `hint` is the charset the letter declares for its text: a client that writes its headers
    in raw 8-bit bytes writes them in that charset (Foxmail, old Outlook: GBK), which settles
    what a short name alone cannot (two bytes read as GBK, Big5 or Windows-1252)."""
    try:
        value.encode("ascii")
        return value, False
    except UnicodeEncodeError:
        pass
    data = value.encode("ascii", "surrogateescape") if _has_surrogates(value) else None
    if data is None:
        return value, True  # already text (a str message); nothing to undo
    hinted = _hinted(data, hint)
    if hinted is not None:
        return hinted, True
    text, _ = _detect(data)
    return text, True


def _hinted(data: bytes, hint: str | None) -> str | None:
    codec = codec_for(hint)
    if codec is None or codec in _SINGLE_BYTE or codec in _SEVEN_BIT:
        return None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    if codec != "utf-8" and _strict_utf8(data):
        # Whole UTF-8 is UTF-8 whatever the body says (QQ, 163 web), unless it reads as no
        # Chinese at all where the hinted charset does ("司" in GBK is UTF-8 "˾").
        if codec not in _CHINESE_CODECS or _HANZI.search(data.decode("utf-8")):
            return None
        return text if _HANZI.search(text) else None
    return text


_HANZI = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in value)
