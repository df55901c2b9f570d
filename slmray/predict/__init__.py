"""Prediction before anything runs: the analytical estimate of memory and speed (`estimate`), its
correction from measured trials (`calibration`), and the measured time outside the training steps
(`overheads`: a warm trial, a worker group's start, compile).
"""
