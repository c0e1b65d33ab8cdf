"""A minimal MessagePack encoder (the test machine's python has no msgpack
module): None, bool, int, float (as float64), str, bytes, list, dict."""
import struct


def packb(v):
    out = bytearray()
    _pack(v, out)
    return bytes(out)


def _len(out, n, fix_base, fix_max, codes):
    if fix_base is not None and n <= fix_max:
        out.append(fix_base | n)
    elif n < 1 << 8 and codes[0] is not None:
        out += bytes([codes[0], n])
    elif n < 1 << 16:
        out += bytes([codes[1]]) + struct.pack(">H", n)
    else:
        out += bytes([codes[2]]) + struct.pack(">I", n)


def _pack(v, out):
    if v is None:
        out.append(0xc0)
    elif v is True:
        out.append(0xc3)
    elif v is False:
        out.append(0xc2)
    elif isinstance(v, int):
        if 0 <= v < 128:
            out.append(v)
        elif -32 <= v < 0:
            out.append(v & 0xff)
        elif v >= 0:
            out += b"\xcf" + struct.pack(">Q", v)
        else:
            out += b"\xd3" + struct.pack(">q", v)
    elif isinstance(v, float):
        out += b"\xcb" + struct.pack(">d", v)
    elif isinstance(v, str):
        b = v.encode()
        _len(out, len(b), 0xa0, 31, (0xd9, 0xda, 0xdb))
        out += b
    elif isinstance(v, (bytes, bytearray)):
        _len(out, len(v), None, 0, (0xc4, 0xc5, 0xc6))
        out += v
    elif isinstance(v, (list, tuple)):
        _len(out, len(v), 0x90, 15, (None, 0xdc, 0xdd))
        for x in v:
            _pack(x, out)
    elif isinstance(v, dict):
        _len(out, len(v), 0x80, 15, (None, 0xde, 0xdf))
        for k, x in v.items():
            _pack(k, out)
            _pack(x, out)
    else:
        raise TypeError(type(v))
