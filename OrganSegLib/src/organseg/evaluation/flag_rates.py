"""How often each plausibility flag fires on good and on bad masks of a labelled set: the checks measured.

A mask is bad when its Dice against the reference is below BAD_DICE. A useful flag fires often on bad masks
and rarely on good ones; `cut_by_fov` says nothing about quality and is listed for completeness.
"""
from __future__ import annotations

from organseg.results.plausibility import CODES

BAD_DICE = 0.5
ANY = "any flag"


def flag_rates(rows: list[dict]) -> list[dict]:
    """Per code (and for any flag): masks checked and flagged, good (Dice >= BAD_DICE) and bad, from compare rows.

    Rows whose prediction recorded no flags (row["flags"] None) are left out.
    """
    known = [r for r in rows if r.get("flags") is not None]
    good = [set(r["flags"].split(";")) - {""} for r in known if r["dice"] >= BAD_DICE]
    bad = [set(r["flags"].split(";")) - {""} for r in known if not r["dice"] >= BAD_DICE]
    out = []
    for code in (*CODES, ANY):
        def fired(masks: list[set[str]]) -> int:
            return sum(bool(m) if code == ANY else code in m for m in masks)
        out.append({"flag": code, "good_n": len(good), "good_flagged": fired(good), "bad_n": len(bad),
                    "bad_flagged": fired(bad)})
    return out


def flag_table(rows: list[dict]) -> list[str]:
    """Markdown lines of the flag rates; empty when no prediction recorded flags."""
    rates = flag_rates(rows)
    if not rates[0]["good_n"] + rates[0]["bad_n"]:
        return []

    def cell(k: int, n: int) -> str:
        return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "–"

    lines = ["## Plausibility flags on good and bad masks", "",
             f"| Flag | good masks (Dice ≥ {BAD_DICE:g}) | bad masks (Dice < {BAD_DICE:g}) |", "|---|---|---|"]
    lines += [f"| {r['flag']} | {cell(r['good_flagged'], r['good_n'])} | {cell(r['bad_flagged'], r['bad_n'])} |"
              for r in rates]
    return lines + ["", "Masks the flag fired on, of the masks with recorded flags (stats.json of `organseg segment`).",
                    ""]
