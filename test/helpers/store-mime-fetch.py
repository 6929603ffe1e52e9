"""Fetches BODY.PEEK[<section>] and BODYSTRUCTURE items raw from an IMAP server with
Python's imaplib (a client no one here wrote), for the MIME cross-check against Dovecot.

usage: store-mime-fetch.py <port> <master> <password> <user> <uid> <section>...
prints JSON: {"<section>": <base64 bytes> | null, ..., "BODYSTRUCTURE": "<raw>", "ENVELOPE": "<raw>"}
"""
import base64
import imaplib
import json
import re
import sys

port, master, password, user, uid = sys.argv[1:6]
sections = sys.argv[6:]
imap = imaplib.IMAP4('127.0.0.1', int(port))
imap.authenticate('PLAIN', lambda _: f'{user}\0{master}\0{password}'.encode())
imap.select('INBOX', readonly=True)
out = {}
for spec in sections:
    typ, data = imap.uid('FETCH', uid, f'(BODY.PEEK[{spec}])')
    if typ != 'OK':
        raise SystemExit(f'FETCH {spec} failed: {data!r}')
    item = data[0]
    if isinstance(item, tuple):
        out[spec] = base64.b64encode(item[1]).decode()
        continue
    # short values may come as a quoted string instead of a literal
    quoted = re.search(rb'BODY\[[^\]]*\](?:<\d+>)? "((?:[^"\\]|\\.)*)"', item or b'')
    if quoted is not None:
        out[spec] = base64.b64encode(re.sub(rb'\\(.)', rb'\1', quoted.group(1))).decode()
    else:
        out[spec] = None
for item in ('BODYSTRUCTURE', 'ENVELOPE'):
    typ, data = imap.uid('FETCH', uid, f'({item})')
    # literals are put back inline as {n}CRLF<bytes> so the caller sees the response as sent
    raw = b''.join(x if isinstance(x, bytes) else x[0] + b'\r\n' + x[1] for x in data)
    out[item] = raw.decode('utf-8', 'replace')
imap.logout()
print(json.dumps(out))
