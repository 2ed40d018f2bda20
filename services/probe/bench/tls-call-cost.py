# One process, one thread: a TLS client and server on loopback exchange 64-byte messages; each
# round is SSL_write + SSL_read on each side (4 library calls, 4 socket syscalls). Prints the
# process's CPU seconds for ROUNDS rounds. Used by tls-call-cost.mjs.
import socket, ssl, sys, time
cert, key, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); srv_ctx.load_cert_chain(cert, key)
cli_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cli_ctx.check_hostname = False; cli_ctx.verify_mode = ssl.CERT_NONE
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
c = socket.create_connection(ls.getsockname()); s, _ = ls.accept()
c.setblocking(False); s.setblocking(False)
cs = cli_ctx.wrap_socket(c, do_handshake_on_connect=False); ss = srv_ctx.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
for _ in range(1000):
    done = 0
    for x in (cs, ss):
        try: x.do_handshake(); done += 1
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError): pass
    if done == 2: break
cs.setblocking(True); ss.setblocking(True)
msg = b"x" * 64
def run(n):
    for _ in range(n):
        cs.write(msg); ss.read(64); ss.write(msg); cs.read(64)
run(2000)
t0 = time.process_time(); run(rounds); t1 = time.process_time()
print(t1 - t0)
