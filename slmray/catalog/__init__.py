"""Facts read from the package's data files: GPU specifications (`gpus`, gpus.csv), cloud instances
(`instances`, instances.csv) and what they cost (`prices`, prices.csv), through one CSV reader (`tables`).
"""
