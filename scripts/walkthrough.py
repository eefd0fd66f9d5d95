#!/usr/bin/env python3
"""Runs the README walkthrough verbatim against a worker and checks every
response.

It starts the sample application with `make run` (embedded broker, fresh
data directory) unless WALKTHROUGH_NO_START is set, waits until /readyz
answers, then runs the commands of the README section between
<!-- walkthrough --> and <!-- /walkthrough --> in one bash session, in
order. A command followed by output must print exactly that output; view
queries and entity reads are eventually consistent, so they are retried for
up to 15 s until they do. With KAFKA_BOOTSTRAP_SERVERS set, the worker uses that broker
instead (and PARTITA_APP should name fresh topics).
"""
import os, re, shlex, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def steps():
    text = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- walkthrough -->(.*?)<!-- /walkthrough -->", text, re.S)
    if not m:
        sys.exit("walkthrough: README.md has no <!-- walkthrough --> section")
    out, cmd, expect = [], None, []
    in_block = False
    for line in m.group(1).splitlines():
        if line.startswith("```"):
            in_block = not in_block
            if cmd is not None:
                out.append((cmd, "\n".join(expect).strip()))
                cmd, expect = None, []
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            if cmd is not None:
                out.append((cmd, "\n".join(expect).strip()))
            cmd, expect = line[2:], []
        elif cmd is not None:
            expect.append(line)
    if not out:
        sys.exit("walkthrough: no commands found")
    return out


def script(steps):
    lines = ["fail=0"]
    for i, (cmd, want) in enumerate(steps, 1):
        if not want:
            lines.append(cmd)
            continue
        # Reads (views, and entity state from a worker's copy of the table)
        # are eventually consistent: retried. Commands run once.
        tries = 60 if "/views/" in cmd or ("/entities/" in cmd and "--json" not in cmd) else 1
        lines.append(f"want=$(cat <<'WANT_{i}'\n{want}\nWANT_{i}\n)")
        lines.append(f"for try in $(seq {tries}); do out=$({cmd}); [ \"$out\" == \"$want\" ] && break; sleep 0.25; done")
        lines.append(
            f"if [ \"$out\" == \"$want\" ]; then echo 'ok   {i}: '{shlex.quote(cmd)}; "
            f"else echo 'FAIL {i}: '{shlex.quote(cmd)}; echo \"  got:  $out\"; echo \"  want: $want\"; fail=1; fi")
    lines.append("exit $fail")
    return "\n".join(lines) + "\n"


def wait_ready(proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"walkthrough: the worker exited with {proc.returncode}")
        try:
            with urllib.request.urlopen("http://localhost:8080/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("walkthrough: the worker did not become ready")


def main():
    st = steps()
    proc = None
    log = None
    if not os.environ.get("WALKTHROUGH_NO_START"):
        data = tempfile.mkdtemp(prefix="partita-walkthrough-")
        log = open(os.path.join(data, "worker.log"), "w")
        # Carts expire after 5 s here (the README's timer step waits for it).
        env = dict(os.environ, SHOP_CART_IDLE=os.environ.get("SHOP_CART_IDLE", "5s"))
        proc = subprocess.Popen(["make", "--no-print-directory", "run", f"ARGS=--data-dir {data}"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(proc)
        res = subprocess.run(["bash", "-c", script(st)], cwd=ROOT)
        print(f"walkthrough: {len(st)} commands, {'all responses as in the README' if res.returncode == 0 else 'MISMATCHES'}")
        code = res.returncode
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    if code != 0 and log is not None:
        print("worker log:", log.name)
    sys.exit(code)


main()
