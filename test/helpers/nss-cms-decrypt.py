"""Decrypts a CMS EnvelopedData (DER on stdin) with NSS, the library Thunderbird reads
S/MIME with: the NSS given by NSS_LIB_DIR (Thunderbird's bundled one), the key and
certificate from the NSS database in argv[1] (made with certutil/pk12util). The
plaintext goes to stdout; exit 1 when NSS cannot decrypt it. `--version`: NSS's version. No NSS code of our own:
libsmime3's CMS decoder does everything, as in Thunderbird."""
import ctypes
import os
import sys

lib_dir = os.environ.get('NSS_LIB_DIR', '/usr/lib/thunderbird')
nss = ctypes.CDLL(os.path.join(lib_dir, 'libnss3.so'), mode=ctypes.RTLD_GLOBAL)
smime = ctypes.CDLL(os.path.join(lib_dir, 'libsmime3.so'), mode=ctypes.RTLD_GLOBAL)

nss.NSS_InitReadWrite.argtypes = [ctypes.c_char_p]
nss.NSS_GetVersion.restype = ctypes.c_char_p
if sys.argv[1] == '--version':
    print(nss.NSS_GetVersion().decode())
    sys.exit(0)
if nss.NSS_InitReadWrite(('sql:' + sys.argv[1]).encode()) != 0:
    sys.stderr.write('NSS_InitReadWrite failed\n')
    sys.exit(2)

CONTENT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong)
out = bytearray()


@CONTENT_CB
def collect(_arg, buf, length):
    out.extend(ctypes.string_at(buf, length))


smime.NSS_CMSDecoder_Start.restype = ctypes.c_void_p
smime.NSS_CMSDecoder_Start.argtypes = [ctypes.c_void_p, CONTENT_CB, ctypes.c_void_p,
                                       ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_void_p, ctypes.c_void_p]
smime.NSS_CMSDecoder_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong]
smime.NSS_CMSDecoder_Finish.restype = ctypes.c_void_p
smime.NSS_CMSDecoder_Finish.argtypes = [ctypes.c_void_p]
smime.NSS_CMSMessage_Destroy.argtypes = [ctypes.c_void_p]

der = sys.stdin.buffer.read()
decoder = smime.NSS_CMSDecoder_Start(None, collect, None, None, None, None, None)
status = smime.NSS_CMSDecoder_Update(decoder, der, len(der))
message = smime.NSS_CMSDecoder_Finish(decoder)
if status != 0 or not message or len(out) == 0:
    sys.stderr.write('NSS could not decrypt (NSS %s, error %d)\n'
                     % (nss.NSS_GetVersion().decode(), nss.PORT_GetError()))
    sys.exit(1)
smime.NSS_CMSMessage_Destroy(ctypes.c_void_p(message))
sys.stdout.buffer.write(bytes(out))
