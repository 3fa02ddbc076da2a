void rst_entry(void) {
  __asm__ volatile("mov $60, %eax; mov $7, %edi; syscall");
}
