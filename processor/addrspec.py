"""Address forms the standard library's header parser gives back unchanged.

Parsing an address with `email.headerregistry` costs about 20 us; reading a resident's
From and composing the reply's To both skip it for these forms, the ones most mail
uses, and send anything else through the parser.
"""

from __future__ import annotations

from typing import Final

# RFC 5322 3.2.3 atext.
ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# A dot-atom local part and a domain of letters, digits and hyphens: nothing to quote,
# decode or encode.
PLAIN_ADDR_SPEC: Final = rf"{ATOM}(?:\.{ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
