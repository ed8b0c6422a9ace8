def lambda_handler(e,c): pass
