"""API keys, the principal a key stands for, and the scope rules that decide what it may see."""
