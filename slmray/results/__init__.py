"""The results table: its files (`table`: read, write, append, local or s3://) and the storage under
them (`storage`).  What a row holds is `slmray.core.schema`.
"""
