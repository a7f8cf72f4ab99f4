"""The HTTP edge: the JSON API (`v1`), the web pages (`web`), sign-in, roles and CSRF (`auth`).

Only this process holds credentials to Temporal and the database; browsers and the CLI hold an
API token or a session cookie. Every decision goes through `ApprovalService`.
"""
