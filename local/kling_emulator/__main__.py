"""`python -m local.kling_emulator`: run the emulator until SIGINT/SIGTERM, printing its base URL."""

from local.kling_emulator.emulator import main

main()
