"""The HTML the authorization endpoint shows: the consent page and the error page for
requests that cannot safely be redirected. Self-contained (no external assets), every
value escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Final

from connectwise_sandbox.oauth import SCOPES
from connectwise_sandbox.records import JsonObject

# Framing is refused (clickjacking, RFC 9700 §4.16); inline style is the only asset.
HTML_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2430; }
main { max-width: 34rem; margin: 3rem auto; padding: 2rem; background: #fff;
       border-radius: .5rem; box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }
h1 { font-size: 1.4rem; margin-top: 0; }
label { display: block; font-weight: 600; margin: 1.2rem 0 .4rem; }
select, button { font-size: 1rem; padding: .5rem .9rem; }
.actions { display: flex; gap: .8rem; margin-top: 1.5rem; }
button[value="approve"] { background: #0b5cad; color: #fff; border: 0; border-radius: .3rem; }
button[value="deny"] { background: #fff; color: #1d2430; border: 1px solid #8a94a6;
                       border-radius: .3rem; }
button:focus-visible, select:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
.note { color: #4a5568; font-size: .9rem; }
code { word-break: break-all; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def error_page(message: str) -> str:
    body = (
        "<h1>Authorization request refused</h1>\n"
        f'<p role="alert">{escape(message)}</p>\n'
        '<p class="note">The application sent an invalid authorization request, so you '
        "are not sent back to it. Contact the application's developer.</p>"
    )
    return _page("Authorization request refused", body)


def consent_page(
    *,
    action: str,
    app_name: str,
    client_id: str,
    company_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    members: Sequence[JsonObject],
    selected: str | None,
    hidden: Mapping[str, str],
) -> str:
    """The form posts back to `action` with `hidden` (the original request), the chosen
    `member` and `decision=approve|deny`."""
    scope_items = "\n".join(
        f"<li><strong>{escape(scope)}</strong>: {escape(SCOPES[scope])}</li>" for scope in scopes
    )
    options = "\n".join(
        '<option value="{value}"{selected}>{name} ({value})</option>'.format(
            value=escape(member["identifier"]),
            selected=" selected" if member["identifier"] == selected else "",
            name=escape(f"{member['firstName']} {member['lastName']}"),
        )
        for member in members
    )
    inputs = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in hidden.items()
    )
    app = escape(app_name)
    body = f"""<h1>Authorize {app}</h1>
<p><strong>{app}</strong> (client <code>{escape(client_id)}</code>) asks to access
ConnectWise Manage company <strong>{escape(company_id)}</strong> on your behalf. It will be
allowed to:</p>
<ul>
{scope_items}
</ul>
<form method="post" action="{escape(action)}">
{inputs}
<label for="member">Sign in as</label>
<select id="member" name="member" required>
{options}
</select>
<p class="note">After you decide, you return to <code>{escape(redirect_uri)}</code>.</p>
<div class="actions">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
<p class="note">ConnectWise sandbox: choose the member to act as; no password is asked.</p>"""
    return _page(f"Authorize {app_name}", body)
