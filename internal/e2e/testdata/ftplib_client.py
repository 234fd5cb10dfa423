"""Drive wharf's FTPS with Python's ftplib for the Go test TestFTPSFtplib
(ftps_ftplib_test.go).

Usage: /usr/bin/python3 ftplib_client.py PLAN.json

The plan (written by the Go test) says how to connect and lists steps, each
{"name", "op", "args"}. The script logs in over explicit FTPS (AUTH TLS, then
PBSZ 0 / PROT P), runs every step in order on that one control connection and
prints one JSON object on stdout:

  {"connect": OUTCOME, "steps": [OUTCOME, ...]}

OUTCOME is {"name", "ok": true, "value": ...} or {"name", "ok": false,
"type": exception class, "msg", "code": the FTP reply code of the failure or
null, "late": a reply read after a failed data connection or null}. A failed
step does not stop the run: the Go test decides which failures were
expected. The script exits 0 whenever it printed that object and non-zero
only when it could not run the plan at all.

plan["client"] picks the class: "plain" is ftplib.FTP_TLS as shipped, which
does NOT resume the control connection's TLS session on data connections;
"reuse" is the subclass that does (what FileZilla, lftp and curl do).

The password comes from the environment variable WHARF_E2E_PASSWORD, never
from the command line or the plan file.
"""

import ftplib
import hashlib
import json
import os
import ssl
import sys

TIMEOUT = 30  # seconds for connecting and for each reply or data read
DRAIN_TIMEOUT = 5  # seconds to wait for the reply that follows a broken data connection


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data
    connections, as servers with session reuse required insist on."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size


def reply_code(text):
    if text and len(text) >= 3 and text[:3].isdigit():
        return int(text[:3])
    return None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def op_stor(ftp, local, remote, command="STOR"):
    with open(local, "rb") as f:
        return ftp.storbinary("{} {}".format(command, remote), f)


def op_retr(ftp, remote, local, rest=None):
    # With rest, the bytes from that offset on are appended to local: a
    # download resumed after local already holds the first rest bytes.
    with open(local, "ab" if rest is not None else "wb") as f:
        reply = ftp.retrbinary("RETR " + remote, f.write, rest=rest)
    return {"reply": reply, "size": os.path.getsize(local), "sha256": sha256_file(local)}


def op_list(ftp, path):
    lines = []
    ftp.retrlines("LIST " + path if path else "LIST", lines.append)
    return lines


def run_step(ftp, op, args):
    if op == "stor":
        return op_stor(ftp, *args)
    if op == "appe":
        return op_stor(ftp, args[0], args[1], "APPE")
    if op == "retr":
        return op_retr(ftp, *args)
    if op == "list":
        return op_list(ftp, *args)
    if op == "nlst":
        return sorted(ftp.nlst(*args))
    if op == "mlsd":
        return [[name, facts] for name, facts in ftp.mlsd(*args)]
    if op == "size":
        return ftp.size(*args)
    if op == "rename":
        return ftp.rename(*args)
    if op == "delete":
        return ftp.delete(*args)
    if op == "mkd":
        return ftp.mkd(*args)
    if op == "rmd":
        return ftp.rmd(*args)
    if op == "cwd":
        return ftp.cwd(*args)
    if op == "pwd":
        return ftp.pwd()
    if op == "cmd":
        # Any other command, e.g. "MDTM f", "FEAT", "HASH f", "PORT ...":
        # the value is the whole reply text.
        return ftp.sendcmd(*args)
    raise ValueError("unknown op {!r}".format(op))


def drain(ftp):
    """Read the reply that follows a data connection which broke off after
    the 150: without it the next step would read a stale reply."""
    old = ftp.sock.gettimeout()
    ftp.sock.settimeout(DRAIN_TIMEOUT)
    try:
        return ftp.getresp()
    except ftplib.Error as e:
        return str(e)
    except Exception:
        return None
    finally:
        ftp.sock.settimeout(old)


def failure(name, e, late=None):
    msg = str(e)
    code = reply_code(msg) if isinstance(e, ftplib.Error) else None
    if code is None:
        code = reply_code(late)
    return {"name": name, "ok": False, "type": type(e).__name__, "msg": msg,
            "code": code, "late": late}


def connect(plan):
    ctx = ssl.create_default_context()
    # The certificate is self-signed; the Go test compares the one presented
    # (cert_sha256 below) with the file in state_dir instead.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    cls = ReusingFTP_TLS if plan["client"] == "reuse" else ftplib.FTP_TLS
    ftp = cls(context=ctx, timeout=TIMEOUT)
    try:
        welcome = ftp.connect(plan["host"], plan["port"])
        login = ftp.login(plan["user"], os.environ["WHARF_E2E_PASSWORD"])
        prot = ftp.prot_p()
    except Exception:
        ftp.close()
        raise
    der = ftp.sock.getpeercert(binary_form=True)
    return ftp, {
        "welcome": welcome,
        "login": login,
        "prot": prot,
        "tls_version": ftp.sock.version(),
        "cert_sha256": hashlib.sha256(der).hexdigest(),
    }


def main():
    if len(sys.argv) != 2:
        print("usage: ftplib_client.py PLAN.json", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    result = {"connect": None, "steps": []}
    try:
        ftp, info = connect(plan)
    except Exception as e:
        result["connect"] = failure("connect", e)
        print(json.dumps(result))
        return 0
    result["connect"] = {"name": "connect", "ok": True, "value": info}
    try:
        for step in plan["steps"]:
            try:
                value = run_step(ftp, step["op"], step.get("args", []))
                result["steps"].append({"name": step["name"], "ok": True, "value": value})
            except ftplib.Error as e:
                # A reply the server sent: nothing else is pending.
                result["steps"].append(failure(step["name"], e))
            except (OSError, EOFError, ssl.SSLError) as e:
                # The data connection broke (TLS alert, reset): the server's
                # verdict is still on its way on the control connection.
                result["steps"].append(failure(step["name"], e, drain(ftp)))
    finally:
        try:
            ftp.quit()
        except Exception:
            ftp.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
