"""The background compiler's bookkeeping, with stand-ins for torch.compile (CPU, instant)."""

import threading

import torch

from pipeline.compiler import BackgroundCompiler

KEY = (((1, 4), torch.float32), True)


class Call:
    """Stands in for cuda_graphs.GraphedCall: an eager fn, and a record of promotions."""

    def __init__(self, fn):
        self.fn = fn
        self.name = "unet"
        self.promoted = {}
        self.thread = None

    def promote(self, key, fn):
        self.promoted[key] = fn
        self.thread = threading.current_thread()


def _inputs():
    return [torch.ones(1, 4)]


def test_a_compiled_function_with_the_same_numbers_is_promoted_off_the_caller_thread():
    call = Call(lambda x: x * 2)
    compiler = BackgroundCompiler(lambda fn: (lambda x: fn(x) + 1e-4), start_delay_s=0)
    compiler.request(call, KEY, _inputs())
    assert compiler.wait(10)
    assert list(call.promoted) == [KEY] and call.thread is not threading.main_thread()
    assert abs(call.promoted[KEY](torch.ones(1, 4)).sum().item() - (8 + 4e-4)) < 1e-5


def test_a_compiled_function_that_differs_is_not_used():
    call = Call(lambda x: x * 2)
    compiler = BackgroundCompiler(lambda fn: (lambda x: fn(x) * 1.5), start_delay_s=0)
    compiler.request(call, KEY, _inputs())
    assert compiler.wait(10)
    assert call.promoted == {} and "relative difference" in compiler.rejected[0].problem


def test_a_failing_compile_is_logged_and_the_eager_path_kept(caplog):
    def broken(fn):
        raise RuntimeError("no C compiler for Triton")

    call = Call(lambda x: x * 2)
    compiler = BackgroundCompiler(broken, start_delay_s=0)
    compiler.request(call, KEY, _inputs())
    assert compiler.wait(10)
    assert call.promoted == {} and "no C compiler" in compiler.rejected[0].problem
    assert "keeps serving" in caplog.text


def test_one_compiled_wrapper_per_call_serves_every_shape():
    compiles = []
    call = Call(lambda x: x * 2)
    compiler = BackgroundCompiler(lambda fn: compiles.append(fn) or fn, start_delay_s=0)
    other_key = (((4, 4), torch.float32), True)
    compiler.request(call, KEY, _inputs())
    compiler.request(call, other_key, [torch.ones(4, 4)])
    assert compiler.wait(10)
    assert len(compiles) == 1 and set(call.promoted) == {KEY, other_key}
