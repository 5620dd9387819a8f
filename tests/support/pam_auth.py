"""A PAM login check to run with the node image's python3 (stdlib only, ctypes): authenticate and
check the account of a user through a PAM service, the password on stdin, as the notebook hub's
PAM authenticator (pamela) and sshd do. Exit status: PAM's result (0 is PAM_SUCCESS)."""

PAM_AUTH = r'''
import ctypes, sys

user, service = sys.argv[1], sys.argv[2]
password = sys.stdin.read().encode()
libpam = ctypes.CDLL("libpam.so.0")
libc = ctypes.CDLL("libc.so.6")
libc.calloc.restype = ctypes.c_void_p
libc.strdup.restype = ctypes.c_void_p
libc.strdup.argtypes = [ctypes.c_char_p]


class Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(Message)),
                        ctypes.POINTER(ctypes.POINTER(Response)), ctypes.c_void_p)


class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]


def answer(count, messages, responses, _data):
    # PAM frees what we hand it: the array and each answer come from the C library's allocator.
    array = ctypes.cast(libc.calloc(count, ctypes.sizeof(Response)), ctypes.POINTER(Response))
    for i in range(count):
        if messages[i].contents.msg_style == 1:  # PAM_PROMPT_ECHO_OFF: the password
            array[i].resp = libc.strdup(password)
    responses[0] = array
    return 0


conv = Conv(CONV(answer), None)
handle = ctypes.c_void_p()
code = libpam.pam_start(service.encode(), user.encode(), ctypes.byref(conv), ctypes.byref(handle))
if code == 0:
    code = libpam.pam_authenticate(handle, 0)
if code == 0:
    code = libpam.pam_acct_mgmt(handle, 0)
libpam.pam_end(handle, code)
sys.exit(code)
'''
