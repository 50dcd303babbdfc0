"""The code lists behind the first three digits of a CCCD number (TT 07/2016/TT-BCA art. 7), as data.

A number starting with 0 names the province where the birth was registered (appendix I); any other
start names the country, for citizens whose birth was registered abroad (appendix II).
"""

from __future__ import annotations

import re

# Appendix I: the 63 province codes.
PROVINCES = frozenset(
    re.findall(
        r"\d{3}",
        "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036 037 "
        "038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075 077 079 "
        "080 082 083 084 086 087 089 091 092 093 094 095 096",
    )
)

# Appendix II has not been transcribed: the project holds no copy of it, and a guessed list would turn
# away citizens born abroad. Until it is, every code from 100 to 999 counts as a country code; replace
# this set with the appendix's codes and the check tightens with no change of code.
COUNTRIES = frozenset(f"{code:03d}" for code in range(100, 1000))
