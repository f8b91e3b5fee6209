#!/usr/bin/python3
"""Independent WebSocket client (Debian python3-websocket) for the corral
streaming server tests. Usage: ws_client.py CASE URL [PORT...]
Exits 0 when the case passes, 1 with a message otherwise."""
import base64
import json
import socket
import struct
import sys

import websocket


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def connect(url, protos):
    if url.startswith("https://"):
        import ssl
        return websocket.create_connection(url.replace("https://", "wss://", 1), subprotocols=protos, timeout=20,
                                           sslopt={"cert_reqs": ssl.CERT_NONE})
    return websocket.create_connection(url.replace("http://", "ws://", 1), subprotocols=protos, timeout=20)


def collect(ws, b64=False):
    """Read channel messages until the server closes; returns {ch: bytes}."""
    chans = {}
    first = None
    while True:
        try:
            op, data = ws.recv_data(control_frame=False)
        except websocket.WebSocketConnectionClosedException:
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        if b64:
            if op != websocket.ABNF.OPCODE_TEXT:
                fail("base64 protocol sent a non-text frame")
            ch = data[0] - ord("0")
            payload = base64.b64decode(data[1:])
        else:
            ch = data[0]
            payload = data[1:]
        if first is None:
            first = (ch, payload)
        chans[ch] = chans.get(ch, b"") + payload
    return chans, first


def status_of(chans):
    raw = chans.get(3, b"")
    return json.loads(raw) if raw else None


def case_exec(url, proto):
    ws = connect(url, [proto])
    if ws.getsubprotocol() != proto:
        fail("negotiated %r, want %r" % (ws.getsubprotocol(), proto))
    chans, first = collect(ws)
    if first != (1, b""):
        fail("first message should be the empty stdout ready message, got %r" % (first,))
    if chans.get(1) != b"out\n" or chans.get(2) != b"err\n":
        fail("streams %r" % chans)
    st = status_of(chans)
    if not st or st.get("status") != "Failure" or st.get("reason") != "NonZeroExitCode":
        fail("status %r" % st)
    causes = st["details"]["causes"]
    if causes != [{"reason": "ExitCode", "message": "3"}]:
        fail("causes %r" % causes)
    if not st["message"].startswith("command terminated with non-zero exit code"):
        fail("message %r" % st["message"])


def case_cat_v5(url):
    ws = connect(url, ["v5.channel.k8s.io"])
    if ws.getsubprotocol() != "v5.channel.k8s.io":
        fail("negotiated %r" % ws.getsubprotocol())
    ws.send_binary(b"\x00hello ")
    ws.send_binary(b"\x00websocket\n")
    ws.send_binary(b"\xff\x00")  # v5: close stdin
    chans, _ = collect(ws)
    if chans.get(1) != b"hello websocket\n":
        fail("cat echoed %r" % chans.get(1))
    st = status_of(chans)
    if st != {"metadata": {}, "status": "Success"}:
        fail("status %r" % st)


def case_base64(url):
    ws = connect(url, ["base64.channel.k8s.io"])
    if ws.getsubprotocol() != "base64.channel.k8s.io":
        fail("negotiated %r" % ws.getsubprotocol())
    chans, _ = collect(ws, b64=True)
    if chans.get(1) != b"out\n" or chans.get(2) != b"err\n":
        fail("streams %r" % chans)
    # pre-v4: the error channel carries the message text
    if not chans.get(3, b"").startswith(b"command terminated with non-zero exit code"):
        fail("error channel %r" % chans.get(3))


def case_tty(url):
    ws = connect(url, ["v4.channel.k8s.io"])
    ws.send_binary(b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode())
    ws.send_binary(b"\x00go\n")
    chans, _ = collect(ws)
    if b"30 100" not in chans.get(1, b""):
        fail("stty size said %r" % chans.get(1))


def case_portforward(url, port):
    # two ports (the same echo server twice): data channel 0/2, error 1/3
    ws = connect(url + "?port=%d&port=%d" % (port, port), ["v4.channel.k8s.io"])
    if ws.getsubprotocol() != "v4.channel.k8s.io":
        fail("negotiated %r" % ws.getsubprotocol())
    want = struct.pack("<H", port)
    seen = {}
    while len(seen) < 4:
        op, data = ws.recv_data()
        if data[0] in seen:
            fail("second message before all port prefixes: %r" % data)
        if data[1:] != want:
            fail("channel %d first message %r, want port %r" % (data[0], data[1:], want))
        seen[data[0]] = True
    ws.send_binary(b"\x00ping one")
    ws.send_binary(b"\x02ping two")
    got = {0: b"", 2: b""}
    while got[0] != b"ping one" or got[2] != b"ping two":
        op, data = ws.recv_data()
        if data[0] not in got:
            fail("unexpected channel %d: %r" % (data[0], data))
        got[data[0]] += data[1:]
        if len(got[0]) > 8 or len(got[2]) > 8:
            fail("echo %r" % got)
    ws.close()


def case_portforward_refused(url):
    ws = connect(url + "?port=1", ["v4.channel.k8s.io"])
    chans, _ = collect(ws)
    if b"error forwarding port 1" not in chans.get(1, b""):
        fail("error channel %r" % chans)


def case_malformed(url):
    ws = connect(url, ["v4.channel.k8s.io"])
    # an unmasked client frame is a protocol error: the server closes (1002)
    ws.sock.sendall(b"\x82\x02\x00x")
    try:
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                if code != 1002:
                    fail("close code %r" % code)
                return
    except (websocket.WebSocketConnectionClosedException, ConnectionError, socket.timeout):
        return


def case_noproto(url):
    try:
        connect(url, ["v9.bogus.k8s.io"])
    except websocket.WebSocketBadStatusException as e:
        if e.status_code != 403:
            fail("status %d" % e.status_code)
        return
    fail("bogus protocol accepted")


def case_reused(url):
    try:
        connect(url, ["v4.channel.k8s.io"])
    except websocket.WebSocketBadStatusException as e:
        if e.status_code != 404:
            fail("status %d" % e.status_code)
        return
    fail("reused token accepted")


def main():
    case, url = sys.argv[1], sys.argv[2]
    if case == "exec-v4":
        case_exec(url, "v4.channel.k8s.io")
    elif case == "exec-v5":
        case_exec(url, "v5.channel.k8s.io")
    elif case == "cat-v5":
        case_cat_v5(url)
    elif case == "base64":
        case_base64(url)
    elif case == "tty":
        case_tty(url)
    elif case == "portforward":
        case_portforward(url, int(sys.argv[3]))
    elif case == "portforward-refused":
        case_portforward_refused(url)
    elif case == "malformed":
        case_malformed(url)
    elif case == "noproto":
        case_noproto(url)
    elif case == "reused":
        case_reused(url)
    else:
        fail("unknown case " + case)


if __name__ == "__main__":
    main()
