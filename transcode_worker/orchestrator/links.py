"""Signed /play links, in the way of nginx's secure_link (pure: no I/O).

With api_token set, ``GET /play`` would otherwise let anyone on the network start transcodes of
any film in the roots until every worker is full; a TV cannot send a bearer token. So it takes a
link whose query (the source path, the configuration, an expiry) is signed with the token,
HMAC-SHA256 over every argument but the signature, sorted and URL-encoded (so no argument can be
added, dropped, repeated or moved between keys without the signature changing). A program mints
one with ``POST /v1/play-links``.
"""
import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode

SIGNATURE = "sig"
EXPIRES = "expires"
MAX_EXPIRES_IN_S = 366 * 86400
DEFAULT_EXPIRES_IN_S = 6 * 3600  # a film, with pauses


class Unsigned(Exception):
    """A /play link that is not signed, altered, or expired: 403 with why."""


def signature(token, pairs):
    """The link's signature of its (key, value) query arguments (the signature's own excluded)."""
    message = urlencode(sorted(pairs)).encode()
    digest = hmac.new(token.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(token, pairs, expires_in_s, now=None):
    """The query string of a signed link: `pairs`, an expiry `expires_in_s` from now, the signature."""
    now = time.time() if now is None else now
    pairs = [*pairs, (EXPIRES, str(int(now + expires_in_s)))]
    return urlencode([*pairs, (SIGNATURE, signature(token, pairs))])


def check(token, args, now=None):
    """Raise Unsigned unless `args` (a MultiDict of the query) are a link signed with `token`
    that has not expired."""
    now = time.time() if now is None else now
    given = args.getlist(SIGNATURE)
    if len(given) != 1:
        raise Unsigned("this worker pool takes signed /play links only (api_token is set): mint one with "
                       "POST /v1/play-links")
    pairs = [(key, value) for key, values in args.lists() if key != SIGNATURE for value in values]
    if not hmac.compare_digest(given[0].encode(), signature(token, pairs).encode()):
        raise Unsigned("the /play link's signature does not match: it was altered, or signed with another token")
    expires = args.getlist(EXPIRES)
    if len(expires) != 1 or not expires[0].isdigit():
        raise Unsigned("the /play link has no expiry")
    if int(expires[0]) < now:
        raise Unsigned(f"the /play link expired {int(now) - int(expires[0])} s ago")
