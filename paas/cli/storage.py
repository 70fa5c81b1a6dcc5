"""(commands added by issue 15 work)"""
