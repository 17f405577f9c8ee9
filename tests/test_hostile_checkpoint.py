"""A `.pth` built to run code when read must not run it: every pickle the reader opens is restricted.

The files are written opcode by opcode (no PyTorch needed): a legacy-format file (five pickles back
to back, then the raw storages) and a zip-format file (`archive/data.pkl`). Each hostile variant
carries a payload that, if the pickle were allowed to call it, writes a marker file. One variant
(the storage-key list) also returns the right keys, so a reader that ran it would load valid
tensors and nothing would look wrong: the marker is the only witness.
"""
import pickle
import zipfile

import numpy as np
import pytest

from xtts_book.convert import load_torch_checkpoint, read_torch_file

MAGIC = 0x1950a86a20f9469cfc6c
W = np.arange(4, dtype=np.float32)


def frag(x) -> bytes:
    "The opcodes that push one plain value (protocol 2, without PROTO and STOP)."
    return pickle.dumps(x, protocol=2)[2:-1]


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tensor(key="0", numel=4, offset=0, size=(4,), stride=(1,)) -> bytes:
    "`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`."
    storage = b"(" + frag("storage") + glob("torch", "FloatStorage") + frag(key) + frag("cpu") + frag(numel) + b"tQ"
    args = storage + frag(offset) + frag(size) + frag(stride) + frag(False) + glob("collections", "OrderedDict") + b")R"
    return glob("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"


def payload(marker, returns="None") -> bytes:
    "`eval(...)`: writes the marker file, then evaluates to `returns`."
    return glob("builtins", "eval") + frag((f"(open({str(marker)!r}, 'w').write('ran'), {returns})[1]",)) + b"R"


def main_object(extra: bytes = b"") -> bytes:
    "`{'w': tensor}` (plus any extra opcodes run before the dict is finished)."
    return b"\x80\x02}" + frag("w") + tensor() + b"s" + extra + b"."


def legacy_file(path, obj: bytes, keys: bytes | None = None):
    keys = keys if keys is not None else pickle.dumps(["0"], protocol=2)
    with open(path, "wb") as f:
        for head in (MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            f.write(pickle.dumps(head, protocol=2))
        f.write(obj)
        f.write(keys)
        f.write(len(W).to_bytes(8, "little") + W.tobytes())


def zip_file(path, obj: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", obj)
        z.writestr("archive/data/0", W.tobytes())


def test_crafted_files_are_real_checkpoints(tmp_path):
    "The hand-written format is the real one: an honest file built this way loads."
    legacy_file(tmp_path / "l.pth", main_object())
    zip_file(tmp_path / "z.pth", main_object())
    for name in ("l.pth", "z.pth"):
        np.testing.assert_array_equal(load_torch_checkpoint(tmp_path / name)["w"], W)


@pytest.mark.parametrize("where", ["legacy main object", "legacy storage keys", "legacy header", "zip data.pkl"])
def test_hostile_checkpoint_runs_nothing(tmp_path, where):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil.pth"
    extra = frag("x") + payload(marker) + b"s"                # {'w': tensor, 'x': eval(...)}
    if where == "legacy main object":
        legacy_file(path, main_object(extra))
    elif where == "legacy storage keys":                      # the payload returns the right keys
        legacy_file(path, main_object(), keys=b"\x80\x02" + payload(marker, returns="['0']") + b".")
    elif where == "legacy header":
        with open(path, "wb") as f:
            f.write(b"\x80\x02" + payload(marker, returns=str(MAGIC)) + b".")
    else:
        zip_file(path, main_object(extra))
    for load in (load_torch_checkpoint, read_torch_file):
        try:
            load(path)
        except ValueError:
            pass                                              # refusing the file is fine; running it is not
        assert not marker.exists(), f"{where}: the checkpoint ran code through {load.__name__}"


def test_malformed_tensor_records_are_refused(tmp_path):
    "Negative strides or offsets would read outside the storage; the reader refuses them by name."
    for kw in ({"stride": (-1,)}, {"offset": -2}, {"size": (4, 4), "stride": (1,)}):
        obj = b"\x80\x02}" + frag("w") + tensor(**kw) + b"s."
        legacy_file(tmp_path / "bad.pth", obj)
        with pytest.raises(ValueError, match="malformed tensor record"):
            load_torch_checkpoint(tmp_path / "bad.pth")
    # a pickle that tries to overwrite a storage's fields (BUILD on our own object)
    build = (b"\x80\x02}" + frag("w") + b"(" + frag("storage") + glob("torch", "FloatStorage") + frag("0")
             + frag("cpu") + frag(4) + b"tQ" + frag({"loader": None, "_array": "x"}) + b"bs.")
    legacy_file(tmp_path / "build.pth", build)
    with pytest.raises(ValueError, match="set the state"):
        load_torch_checkpoint(tmp_path / "build.pth")
