"""Prediction before anything runs: the analytical estimate of memory and speed (`estimate`) and its
correction from measured trials (`calibration`).
"""
