from tools.entry import console

console()
