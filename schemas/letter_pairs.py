"""Random letters or words? The test that tells a digit-free token a machine drew (a secret's body)
from an identifier or a word, shared by the processors' redaction rules and the SDK's preview check.
"""
from __future__ import annotations

import math
import re
from collections import Counter


def shannon_bits(s: str) -> float:
    """Bits per character of ``s`` by its own character frequencies."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


# The 313 letter pairs that make 98.5% of the pairs in English words and code identifiers
# (counted over the words of ~6,000 Python source files: names, comments, docstrings). A random
# draw of letters uses all 676 pairs evenly, so under half of its pairs are common; words and
# identifiers in any case or spelling (``TokenRefreshHandler``, ``user_profile_settings``,
# ``AUTHENTICATION_REQUIRED``, ``accesstokenrefresh``) are common in >90% of theirs.
_COMMON_PAIRS = frozenset(re.findall("..", (
    "abacadafagaiakalamanaparasatauavawaxaybabdbebibjblbobrbsbubycacbcccecfchcickclcocpcrcsctcucyda"
    "dbdddedfdgdidldodrdsdtdudyeaebecedeeefegeielemeneoepeqeresetevewexeyfafefffiflfofrfsftfugagdge"
    "ggghgiglgngogrgsgtguhahehihohrhthuiaibicidieifigikiliminioipirisitivixizjejijojskekikskwlalbld"
    "lelflilllmlolsltlulvlymambmcmemimmmnmompmsmunancndnenfngninknlnnnonpnsntnunvnyoaobocodofogoiok"
    "olomonoooporosotouovowoxpapdpephpiplpoppprpsptpupyqlqurarbrcrdrergrirkrlrmrnrorprrrsrtrurvrysa"
    "scsesfsgshsiskslsmsnsospsqssstsusytatctdtethtitltmtotptrtstttutyuaubucudueufuguiulumunupurusut"
    "vavevivowawewhwiwnwowrwsxaxcxexixpxtxyyayiylymynyoypysytzazezh")))
_LETTER_RUN = re.compile("[a-z]+")


def random_letters(v: str) -> bool:
    """A digit-free token a machine drew rather than words or an identifier: ≥ 16 letters, the
    entropy of random text, and under 72% of its letter pairs common in words. Measured: random
    draws of 20+ letters (any case, with ``_-`` or ``+/``) pass 95-99%; of 57,660 distinct
    digit-free identifiers of 16+ characters from installed packages, 0.06% pass (most of those
    are random test strings themselves)."""
    if sum(c.isalpha() for c in v) < 16 or shannon_bits(v) < 3.3:
        return False
    total = common = 0
    for run in _LETTER_RUN.findall(v.lower()):
        total += len(run) - 1
        common += sum(run[i:i + 2] in _COMMON_PAIRS for i in range(len(run) - 1))
    return total >= 12 and common < 0.72 * total
