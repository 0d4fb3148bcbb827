// The int8 multiply-add rate with AVX512-VNNI: vpdpbusd (u8 x i8, four products summed into
// i32) on 256-bit vectors, as nn/kernels/int8.rs's VNNI tile runs it, 12 independent chains per
// thread, registers only; 64 ops (32 multiply-adds) per chain step.
//   gcc -O2 -mavx512f -mavx512vl -mavx512vnni int8_vnni_peak.c -o vnni -lpthread && ./vnni 2
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
long n=400000000;
void* run(void*arg){
  __m256i acc[12]; __m256i a=_mm256_set1_epi8(3);
  for(int i=0;i<12;i++) acc[i]=_mm256_set1_epi32(i);
  __m256i bb[2]={_mm256_set1_epi8(5),_mm256_set1_epi8(7)};
  for(long i=0;i<n;i++){
    __asm__ volatile("" : "+x"(a));
#define F(k) acc[k]=_mm256_dpbusd_epi32(acc[k],a,bb[k&1]);
    F(0)F(1)F(2)F(3)F(4)F(5)F(6)F(7)F(8)F(9)F(10)F(11)
  }
  int s=0; for(int i=0;i<12;i++){int t[8];_mm256_storeu_si256((void*)t,acc[i]);s+=t[0];}
  *(int*)arg=s; return 0;
}
int main(int argc,char**argv){
  int th=argc>1?atoi(argv[1]):1; pthread_t p[8]; int r[8];
  double t0=now(); for(int i=0;i<th;i++)pthread_create(&p[i],0,run,&r[i]); for(int i=0;i<th;i++)pthread_join(p[i],0);
  double dt=now()-t0; printf("%d threads: %.1f GOP/s int8 VNNI (%.2f s)\n",th, th*(double)n*12*64/dt/1e9, dt);
}
