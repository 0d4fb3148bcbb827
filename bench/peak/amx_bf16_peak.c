// The bf16 multiply-add rate with AMX: tdpbf16ps on full 16 x 16 x 32 tiles, as
// nn/kernels/bf16.rs's AMX block runs it (four accumulator tiles, operands left in tiles:
// registers only); 16384 FLOP per instruction. Asks Linux for the tile state first.
//   gcc -O2 -mamx-tile -mamx-bf16 amx_bf16_peak.c -o amx -lpthread && ./amx 2
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
long n=20000000;
void* run(void*arg){
  unsigned char cfg[64]; memset(cfg,0,64); cfg[0]=1;
  for(int t=0;t<8;t++){cfg[16+2*t]=64; cfg[48+t]=16;}
  _tile_loadconfig(cfg);
  static unsigned short buf[16*32];
  for(int i=0;i<16*32;i++) buf[i]=0x3f80;
  _tile_loadd(4,buf,64); _tile_loadd(5,buf,64); _tile_loadd(6,buf,64); _tile_loadd(7,buf,64);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  for(long i=0;i<n;i++){
    _tile_dpbf16ps(0,4,6); _tile_dpbf16ps(1,5,6); _tile_dpbf16ps(2,4,7); _tile_dpbf16ps(3,5,7);
  }
  static float out[16*16]; _tile_stored(0,out,64); _tile_release();
  *(float*)arg=out[0]; return 0;
}
int main(int argc,char**argv){
  if(syscall(SYS_arch_prctl,0x1023,18)){printf("no AMX tile permission\n");return 1;}
  int th=argc>1?atoi(argv[1]):1; pthread_t p[8]; float r[8];
  double t0=now(); for(int i=0;i<th;i++)pthread_create(&p[i],0,run,&r[i]); for(int i=0;i<th;i++)pthread_join(p[i],0);
  double dt=now()-t0; printf("%d threads: %.1f GFLOP/s bf16 AMX tdpbf16ps (%.2f s)\n",th, th*(double)n*4*16384/dt/1e9, dt);
}
