"""Readers of the two segment formats FFmpeg writes (pure): MPEG-TS packets, tables and PES
headers; ISO BMFF (fMP4) boxes. Enough to read codecs (multivariant.py) and timestamps
(timeline.py) from a segment, nothing more.
"""
import struct

TS_PACKET = 188


def ts_packets(data):
    """(pid, payload_unit_start, payload) of each transport packet."""
    for offset in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        packet = data[offset:offset + TS_PACKET]
        if packet[0] != 0x47:
            continue
        control = packet[3] >> 4 & 3
        start = 4 + (1 + packet[4] if control & 2 else 0)
        if control & 1 and start < TS_PACKET:
            yield (packet[1] & 0x1F) << 8 | packet[2], bool(packet[1] & 0x40), packet[start:]


def section(payload):
    """The bytes of a PSI section (after its pointer field), CRC excluded."""
    body = payload[1 + payload[0]:]
    length = (body[1] & 0x0F) << 8 | body[2]
    return body[:3 + length - 4]


def ts_streams(data):
    """[(stream_type, pid)] from the segment's PAT and PMT."""
    packets = list(ts_packets(data))
    pat = next((p for pid, start, p in packets if pid == 0 and start), None)
    if pat is None:
        return []
    programs = section(pat)[8:]
    pmt_pids = {(programs[i + 2] & 0x1F) << 8 | programs[i + 3]
                for i in range(0, len(programs) - 3, 4) if programs[i] << 8 | programs[i + 1]}
    pmt = next((p for pid, start, p in packets if pid in pmt_pids and start), None)
    if pmt is None:
        return []
    table = section(pmt)
    position = 12 + ((table[10] & 0x0F) << 8 | table[11])
    streams = []
    while position + 5 <= len(table):
        stream_type, pid = table[position], (table[position + 1] & 0x1F) << 8 | table[position + 2]
        streams.append((stream_type, pid))
        position += 5 + ((table[position + 3] & 0x0F) << 8 | table[position + 4])
    return streams


def pes_payload(packets, wanted_pid, limit=1 << 16):
    """The elementary stream bytes of the first PES packets of one pid (PES headers removed)."""
    out = bytearray()
    for pid, start, payload in packets:
        if pid != wanted_pid or (start is False and not out):
            continue
        if start and payload[:3] == b"\x00\x00\x01" and len(payload) > 8:
            payload = payload[9 + payload[8]:]
        out += payload
        if len(out) >= limit:
            break
    return bytes(out)


def pes_pts(payload):
    """The PTS (90 kHz) of a PES packet that starts `payload`; None without one."""
    if payload[:3] != b"\x00\x00\x01" or len(payload) < 14 or not payload[7] & 0x80:
        return None
    b = payload[9:14]
    return (b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


# -- ISO BMFF ------------------------------------------------------------------------------------
def boxes(data, start, end):
    """(type, payload start, end) of each box between start and end."""
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            return
        yield kind.decode("latin-1"), start + header, start + size
        start += size


def child(data, start, end, *path):
    """The (payload start, end) of the first box at `path` below [start, end); None if absent."""
    for kind, child_start, child_end in boxes(data, start, end):
        if kind == path[0]:
            return (child_start, child_end) if len(path) == 1 else child(data, child_start, child_end, *path[1:])
    return None
