"""The local AWS emulator: moto in server mode, over HTTPS, on 127.0.0.1."""

from pipelines.emulator.process import Emulator, EmulatorError, EmulatorInfo, EmulatorStatus

__all__ = ["Emulator", "EmulatorError", "EmulatorInfo", "EmulatorStatus"]
